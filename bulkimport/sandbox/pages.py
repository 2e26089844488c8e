"""The HTML pages the sandbox answers with when the Import endpoint itself does not answer.

nginx's pages are its built-in error pages, byte for byte (``ngx_http_special_response.c``,
CRLF line ends), with the tail nginx writes when ``server_tokens`` is off.
"""

from __future__ import annotations


def _nginx_page(status: str) -> bytes:
    lines = (
        "<html>",
        f"<head><title>{status}</title></head>",
        "<body>",
        f"<center><h1>{status}</h1></center>",
        "<hr><center>nginx</center>",
        "</body>",
        "</html>",
    )
    return "".join(line + "\r\n" for line in lines).encode("ascii")


#: What PHP's failure looks like through the web server (the ``http500_rate`` fault).
SERVER_ERROR_PAGE = b"<html><body><h1>500 Internal Server Error</h1></body></html>"
#: nginx when its upstream (PHP) is down: the ``outage=502`` switch.
BAD_GATEWAY_PAGE = _nginx_page("502 Bad Gateway")
#: nginx when PHP did not answer within ``fastcgi_read_timeout`` (``queue_timeout_s``).
GATEWAY_TIMEOUT_PAGE = _nginx_page("504 Gateway Time-out")
#: A maintenance page served with status 200 (the ``outage=html200`` switch).
MAINTENANCE_PAGE = (
    '<!DOCTYPE html>\n<html>\n<head><meta charset="utf-8"><title>系统维护中 - Maintenance'
    "</title></head>\n<body>\n<h1>系统维护中</h1>\n<p>The call center is under maintenance."
    " Please try again later.</p>\n</body>\n</html>\n"
).encode()

NGINX_HEADERS = {"Content-Type": "text/html", "Server": "nginx"}
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8"}
