"""The HTML pages the sandbox answers with when the Import endpoint itself does not answer.

nginx's pages are its built-in error pages, byte for byte (``ngx_http_special_response.c``,
CRLF line ends), with the tail nginx writes when ``server_tokens`` is off.
"""

from __future__ import annotations


def _nginx_page(status: str, title: str | None = None, detail: str | None = None) -> bytes:
    lines = (
        "<html>",
        f"<head><title>{title or status}</title></head>",
        "<body>",
        f"<center><h1>{status}</h1></center>",
        *((f"<center>{detail}</center>",) if detail else ()),
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

#: nginx when a plain HTTP request reaches its TLS port (its internal 497, sent as 400).
HTTPS_PORT_PAGE = _nginx_page(
    "400 Bad Request",
    "400 The plain HTTP request was sent to HTTPS port",
    "The plain HTTP request was sent to HTTPS port",
)
#: nginx when the request line does not fit in a ``large_client_header_buffers`` buffer.
URI_TOO_LARGE_PAGE = _nginx_page("414 Request-URI Too Large")
#: nginx when a header line does not fit in one.
HEADER_TOO_LARGE_PAGE = _nginx_page(
    "400 Bad Request",
    "400 Request Header Or Cookie Too Large",
    "Request Header Or Cookie Too Large",
)
#: PHP's fatal error as display_errors (html_errors on) prints it: the script ends there.
PHP_FATAL_PAGE = (
    b"<br />\n<b>Fatal error</b>:  Allowed memory size of 134217728 bytes exhausted (tried to"
    b" allocate 20480 bytes) in <b>/var/www/html/asterccinterfaces.php</b> on line <b>212</b>"
    b"<br />\n"
)

NGINX_HEADERS = {"Content-Type": "text/html", "Server": "nginx"}
HTML_HEADERS = {"Content-Type": "text/html; charset=utf-8"}
