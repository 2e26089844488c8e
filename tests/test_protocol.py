"""The pure protocol core: parameters, record encoding, answers and their classification."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bulkimport.errors import RecordError
from bulkimport.protocol import (
    CODES,
    PARAMETER_NAMES,
    Code,
    Fix,
    ImportParams,
    OutcomeKind,
    PasswordType,
    Trouble,
    classify_answer,
    classify_http,
    classify_trouble,
    code_of,
    decode_record,
    describe_code,
    encode_params,
    encode_record,
    format_answer,
    mask_secrets,
    md5_hex,
    parse_answer,
    parse_retry_after,
)

PARAMS = ImportParams(org="demo", user="admin", password="s3cr&t=1", campaign="7")


def test_request_params_are_all_22_in_order() -> None:
    params = PARAMS.request_params("name=Joe||phone1=1")
    assert [name for name, _ in params] == list(PARAMETER_NAMES)
    assert len(PARAMETER_NAMES) == 22
    values = dict(params)
    assert values["EVENT"] == "Import"
    assert values["modeltype"] == "Campaign"
    assert values["model_id"] == "7"
    assert values["source"] == "data"
    assert values["phone_field"] == ""
    assert values["emptyagent"] == "no"


def test_md5_password_is_sent_as_lowercase_hex() -> None:
    params = ImportParams(
        org="o", user="u", password="secret", campaign="1", pwdtype=PasswordType.MD5
    )
    assert dict(params.request_params("x=1"))["password"] == md5_hex("secret")
    assert md5_hex("secret") == "5ebe2294ecd0e0f08eab7690d2a6ee69"


def test_password_is_not_in_repr() -> None:
    assert "s3cr" not in repr(PARAMS)


@given(st.text())
def test_encoded_query_keeps_any_record_inside_context(record: str) -> None:
    query = encode_params(PARAMS)(record)
    parsed = urllib.parse.parse_qsl(query, keep_blank_values=True)
    assert [name for name, _ in parsed] == list(PARAMETER_NAMES)
    assert dict(parsed)["context"] == record
    assert dict(parsed)["password"] == "s3cr&t=1"


def test_a_value_with_parameters_in_it_stays_in_context() -> None:
    record = "name=Joe&password=x&EVENT=Other||phone1=1+2 %41"
    parsed = urllib.parse.parse_qsl(encode_params(PARAMS)(record), keep_blank_values=True)
    assert dict(parsed)["context"] == record
    assert dict(parsed)["EVENT"] == "Import"
    assert len(parsed) == 22


names = st.text(min_size=1).filter(lambda n: "=" not in n and "||" not in n)
values = st.text()


@given(st.lists(st.tuples(names, values), min_size=1))
def test_encode_then_decode_round_trips_or_refuses(pairs: list[tuple[str, str]]) -> None:
    try:
        context = encode_record(pairs)
    except RecordError:
        return
    assert decode_record(context) == pairs


@pytest.mark.parametrize(
    ("pairs", "reason"),
    [
        ([("name", "a||b")], "contains '||'"),
        ([("na=me", "x")], "contains '='"),
        ([("", "x")], "empty"),
        ([("a", "x|"), ("b", "y")], "ends with '|'"),
        ([], "no fields"),
    ],
)
def test_encode_refuses_what_cannot_be_split_back(
    pairs: list[tuple[str, str]], reason: str
) -> None:
    with pytest.raises(RecordError, match=reason):
        encode_record(pairs)


def test_value_may_hold_equals_and_last_value_may_end_with_pipe() -> None:
    context = encode_record([("memo", "a=b=c"), ("city", "x|")])
    assert context == "memo=a=b=c||city=x|"
    assert decode_record(context) == [("memo", "a=b=c"), ("city", "x|")]


@given(st.booleans(), st.text())
def test_answer_round_trips(success: bool, message: str) -> None:
    answer = parse_answer(format_answer(success, message))
    assert answer is not None
    assert answer.success is success
    assert answer.message == message.rstrip()


@given(st.text())
def test_parse_answer_never_raises(body: str) -> None:
    parse_answer(body)


@pytest.mark.parametrize(
    "body", ["", "<html>502 Bad Gateway</html>", "|Retuen|3|Retuen|x", "Retuen|1|Retuen|x"]
)
def test_invalid_bodies_are_not_answers(body: str) -> None:
    answer = parse_answer(body)
    assert answer is None or answer.near
    assert not classify_http(200, body).answered


@pytest.mark.parametrize(
    ("body", "kind", "code"),
    [
        ("|Retuen|1|Retuen|BackMsg_84", OutcomeKind.DONE, "BackMsg_84"),
        ("|Retuen|1|Retuen|BackMsg_83", OutcomeKind.DONE, "BackMsg_83"),
        ("|Retuen|1|Retuen|BackMsg_78,BackMsg_80", OutcomeKind.DONE, "BackMsg_78"),
        ("|Retuen|2|Retuen|BackMsg_81", OutcomeKind.DUPLICATE, "BackMsg_81"),
        ("|Retuen|1|Retuen|BackMsg_82", OutcomeKind.DUPLICATE, "BackMsg_82"),
        ("|Retuen|2|Retuen|BackMsg_74", OutcomeKind.REJECTED, "BackMsg_74"),
        ("|Retuen|2|Retuen|BackMsg_76 phone1", OutcomeKind.REJECTED, "BackMsg_76"),
        ("|Retuen|2|Retuen|BackMsg_85", OutcomeKind.TRANSIENT, "BackMsg_85"),
        ("|Retuen|2|Retuen|BackMsg_100", OutcomeKind.TRANSIENT, "BackMsg_100"),
        ("|Retuen|2|Retuen|BackMsg_06", OutcomeKind.FATAL, "BackMsg_06"),
        ("|Retuen|2|Retuen|BackMsg_63", OutcomeKind.FATAL, "BackMsg_63"),
        ("|Retuen|2|Retuen|BackMsg_73", OutcomeKind.FATAL, "BackMsg_73"),
        ("|Retuen|2|Retuen|BackMsg_02", OutcomeKind.FATAL, "BackMsg_02"),
        ("|Retuen|2|Retuen|something odd", OutcomeKind.REJECTED, "error"),
        ("|Retuen|2|Retuen|BackMsg_89", OutcomeKind.REJECTED, "BackMsg_89"),
    ],
)
def test_answers_are_classified_as_the_table_says(body: str, kind: OutcomeKind, code: str) -> None:
    answer = parse_answer(body)
    assert answer is not None
    outcome = classify_answer(answer)
    assert (outcome.kind, outcome.code) == (kind, code)


def test_remote_fetch_failures_are_fatal_for_a_remote_import() -> None:
    answer = parse_answer("|Retuen|2|Retuen|BackMsg_89")
    assert answer is not None
    assert classify_answer(answer, remote=True).kind is OutcomeKind.FATAL


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (500, OutcomeKind.TRANSIENT),
        (502, OutcomeKind.TRANSIENT),
        (503, OutcomeKind.TRANSIENT),
        (504, OutcomeKind.TRANSIENT),
        (408, OutcomeKind.TRANSIENT),
        (429, OutcomeKind.TRANSIENT),
        (401, OutcomeKind.FATAL),
        (403, OutcomeKind.FATAL),
        (404, OutcomeKind.FATAL),
        (405, OutcomeKind.FATAL),
        (400, OutcomeKind.REJECTED),
        (413, OutcomeKind.REJECTED),
        (414, OutcomeKind.REJECTED),
        (431, OutcomeKind.REJECTED),
    ],
)
def test_http_statuses(status: int, kind: OutcomeKind) -> None:
    assert classify_http(status, "x").kind is kind


def test_a_200_with_an_html_body_is_transient() -> None:
    outcome = classify_http(200, "<html>" + "x" * 500)
    assert outcome.kind is OutcomeKind.TRANSIENT
    assert len(outcome.message) == 200


def test_retry_after_seconds_and_dates() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after(" 1.5 ") == 1.5
    assert parse_retry_after("-4") == 0.0
    assert parse_retry_after("99999") == 3600.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None
    when = "Wed, 21 Oct 2026 07:28:10 GMT"
    now = 1792567680.0  # 07:28:00 that day
    assert parse_retry_after(when, now_s=now) == pytest.approx(10.0)
    outcome = classify_http(429, "slow down", retry_after="2")
    assert outcome.retry_after_s == 2.0


def test_mask_secrets_hides_every_form_of_the_password() -> None:
    password = PARAMS.password
    text = f"p={password} q={urllib.parse.quote_plus(password)} m={md5_hex(password)}"
    masked = mask_secrets(text, PARAMS.secrets)
    assert "s3cr" not in masked
    assert md5_hex(PARAMS.password) not in masked
    assert masked.count("***") == 3


def test_mask_secrets_hides_any_echoed_password_parameter() -> None:
    page = "<p>Bad request: GET /asterccinterfaces?EVENT=Import&password=abc%2"
    assert (
        mask_secrets(page, ()) == "<p>Bad request: GET /asterccinterfaces?EVENT=Import&password=***"
    )
    assert mask_secrets("source_pwd=x&delrow=1", ()) == "source_pwd=***&delrow=1"
    assert mask_secrets("the password is wrong", ()) == "the password is wrong"


@pytest.mark.parametrize("code", list(CODES.values()), ids=lambda code: code.name)
def test_every_code_is_classified_as_its_table_entry_says(code: Code) -> None:
    success = code.verdict in (OutcomeKind.DONE,)
    for remote in (False, True):
        answer = parse_answer(format_answer(success, f"{code.name} detail"))
        assert answer is not None
        outcome = classify_answer(answer, remote=remote)
        assert outcome.kind is code.verdict_for(remote=remote)
        assert (outcome.code, outcome.backmsg) == (code.name, code.number)
        assert outcome.answered and not outcome.maybe_processed


@pytest.mark.parametrize(
    ("number", "kind", "fix"),
    [
        (116, OutcomeKind.FATAL, Fix.LICENCE),
        (115, OutcomeKind.FATAL, Fix.LICENCE),
        (38, OutcomeKind.FATAL, Fix.LOGIN),
        (28, OutcomeKind.FATAL, Fix.PARAMETERS),
        (7, OutcomeKind.FATAL, Fix.PASSWORD),
        (3, OutcomeKind.FATAL, Fix.LOGIN),
        (113, OutcomeKind.TRANSIENT, None),
        (114, OutcomeKind.TRANSIENT, None),
        (69, OutcomeKind.DONE, None),
        (74, OutcomeKind.REJECTED, Fix.FIELDS),
    ],
)
def test_the_vendors_corrected_codes(number: int, kind: OutcomeKind, fix: Fix | None) -> None:
    answer = parse_answer(format_answer(kind is OutcomeKind.DONE, f"BackMsg_{number:02d}"))
    assert answer is not None
    outcome = classify_answer(answer)
    assert (outcome.kind, outcome.backmsg, outcome.fix) == (kind, number, fix)


def test_an_unknown_failure_code_is_a_rejection_that_keeps_its_number() -> None:
    answer = parse_answer("|Retuen|2|Retuen|BackMsg_9999 something new")
    assert answer is not None
    outcome = classify_answer(answer)
    assert (outcome.kind, outcome.code, outcome.backmsg) == (
        OutcomeKind.REJECTED,
        "BackMsg_9999",
        9999,
    )
    assert outcome.message == "BackMsg_9999 something new"
    assert describe_code(9999) == "BackMsg_9999" and code_of(9999) is None


NGINX_504 = (
    "<html>\r\n<head><title>504 Gateway Time-out</title></head>\r\n<body>\r\n"
    "<center><h1>504 Gateway Time-out</h1></center>\r\n<hr><center>nginx/1.22.1</center>\r\n"
    "</body>\r\n</html>\r\n"
)


@pytest.mark.parametrize(
    ("status", "body", "trouble", "maybe_processed", "message"),
    [
        (504, NGINX_504, Trouble.GATEWAY, True, "504 Gateway Time-out"),
        (502, NGINX_504.replace("504 Gateway Time-out", "502 Bad Gateway"), Trouble.GATEWAY,
         True, "502 Bad Gateway"),
        (503, "<h1>Service\n Unavailable</h1>", Trouble.THROTTLED, False, "Service Unavailable"),
        (429, "slow down", Trouble.THROTTLED, False, "slow down"),
        (500, "boom", Trouble.SERVER_ERROR, True, "boom"),
        (408, "<title>408 Request Time-out</title>", Trouble.SERVER_ERROR, False,
         "408 Request Time-out"),
        (501, "not implemented", Trouble.SERVER_ERROR, False, "not implemented"),
        (404, "<title>404 Not Found</title>", Trouble.CLIENT_ERROR, False, "404 Not Found"),
        (414, "<title>414 Request-URI Too Large</title>", Trouble.TOO_LARGE, False,
         "414 Request-URI Too Large"),
        (200, "<!DOCTYPE html><title>Maintenance &amp; more</title>", Trouble.NOT_AN_ANSWER, True,
         "Maintenance & more"),
        (200, "", Trouble.NOT_AN_ANSWER, True, "(an empty body)"),
    ],
)  # fmt: skip
def test_a_response_that_is_no_answer_says_why_in_one_line(
    status: int, body: str, trouble: Trouble, maybe_processed: bool, message: str
) -> None:
    outcome = classify_http(status, body)
    assert outcome.trouble is trouble and not outcome.answered
    assert outcome.maybe_processed is maybe_processed
    assert outcome.message == message
    assert outcome.status == status


def test_troubles_without_a_response() -> None:
    assert classify_trouble(Trouble.TIMEOUT, "no answer in time").maybe_processed
    assert classify_trouble(Trouble.DROPPED, "reset").maybe_processed
    assert not classify_trouble(Trouble.REFUSED, "refused").maybe_processed
    too_long = classify_trouble(Trouble.TOO_LARGE, "the request would be 9,000 bytes")
    assert (too_long.kind, too_long.code) == (OutcomeKind.REJECTED, "too long for GET")


# What a PHP server prints before (or after) its answer: BOMs of included files saved "with
# BOM", and its diagnostics when display_errors is on, plain or with html_errors (PHP's own
# formats: "%s: %s in %s on line %d" and "<br />\n<b>%s</b>:  %s in <b>%s</b> on line
# <b>%d</b><br />\n").
BOM = "\ufeff"
PLAIN_NOTICE = "\nNotice: Undefined index: agent in /var/www/html/interfaces.php on line 41\n"
PLAIN_DEPRECATED = (
    "\nDeprecated: Function split() is deprecated in /var/www/html/lib/db.php on line 7\n"
)
HTML_WARNING = (
    "<br />\n<b>Warning</b>:  mysql_connect(): Headers and client library minor version "
    "mismatch in <b>/var/www/html/lib/db.php</b> on line <b>12</b><br />\n"
)
PHP8_WARNING = "\nWarning: Undefined variable $campaign in /srv/asterCC/i.php on line 3\n"


@pytest.mark.parametrize(
    ("before", "after", "preamble"),
    [
        (BOM, "", "a BOM"),
        (BOM * 3 + "\r\n", "", "3 BOMs"),
        (PLAIN_NOTICE, "", PLAIN_NOTICE.strip()),
        (PHP8_WARNING, "", PHP8_WARNING.strip()),
        ("PHP " + PLAIN_NOTICE.lstrip(), "", "PHP " + PLAIN_NOTICE.strip()),
        (
            HTML_WARNING,
            "",
            "Warning: mysql_connect(): Headers and client library minor version mismatch in "
            "/var/www/html/lib/db.php on line 12",
        ),
        (
            BOM + PLAIN_DEPRECATED + HTML_WARNING + BOM,
            "",
            "2 BOMs, Deprecated: Function split() is deprecated in /var/www/html/lib/db.php on "
            "line 7 Warning: mysql_connect(): Headers and client library minor version mismatch"
            " in /var/www/html/lib/db.php on line 12",
        ),
        (
            "  \n",
            HTML_WARNING,
            "after the answer: Warning: mysql_connect(): Headers and client library minor "
            "version mismatch in /var/www/html/lib/db.php on line 12",
        ),
        ("", PLAIN_NOTICE, "after the answer: " + PLAIN_NOTICE.strip()),
        (" \t\r\n", "\r\n", ""),
    ],
)
def test_an_answer_after_a_bom_or_phps_diagnostics_is_read_and_says_what_came_with_it(
    before: str, after: str, preamble: str
) -> None:
    for message, kind in (
        ("BackMsg_84", OutcomeKind.DONE),
        ("BackMsg_76 phone1", OutcomeKind.REJECTED),
        ("BackMsg_07", OutcomeKind.FATAL),
    ):
        body = before + format_answer(kind is OutcomeKind.DONE, message) + after
        outcome = classify_http(200, body)
        assert outcome.answered and outcome.kind is kind
        assert outcome.message == message
        assert outcome.preamble == preamble[:200]


def test_a_clean_answer_has_no_preamble() -> None:
    answer = parse_answer("|Retuen|1|Retuen|BackMsg_84")
    assert answer is not None and answer.preamble == "" and not answer.near
    assert classify_http(200, "|Retuen|1|Retuen|BackMsg_84").preamble == ""


def test_a_long_preamble_is_cut_short() -> None:
    notices = PLAIN_NOTICE * 50
    outcome = classify_http(200, notices + format_answer(True, "BackMsg_84"))
    assert outcome.kind is OutcomeKind.DONE
    assert 100 < len(outcome.preamble) <= 200


@pytest.mark.parametrize(
    "body",
    [
        # A page that holds an answer somewhere is a page, not an answer.
        "<html><body><p>|Retuen|1|Retuen|BackMsg_84</p></body></html>",
        "<!DOCTYPE html>\n<title>Debug</title>\n|Retuen|1|Retuen|BackMsg_84",
        "Hello |Retuen|1|Retuen|BackMsg_84",
        "ok\n|Retuen|1|Retuen|BackMsg_84",
        # Diagnostics-like words that are not PHP's format.
        "Notice: the server moves tonight\n|Retuen|1|Retuen|BackMsg_84",
        "<b>Notice</b>: maintenance at 22:00<br />\n|Retuen|1|Retuen|BackMsg_84",
        # A fatal error ends the script: nothing after it is an answer.
        "\nFatal error: Allowed memory size exhausted in /x.php on line 9\n"
        "|Retuen|1|Retuen|BackMsg_84",
        BOM + "<html>|Retuen|1|Retuen|BackMsg_84</html>",
    ],
)
def test_text_around_an_answer_other_than_boms_and_diagnostics_is_no_answer(body: str) -> None:
    assert parse_answer(body) is None
    outcome = classify_http(200, body)
    assert outcome.trouble is Trouble.NOT_AN_ANSWER and outcome.maybe_processed


@pytest.mark.parametrize(
    ("body", "number"),
    [
        ("|Retuen|07|Retuen|BackMsg_07", 7),
        ("|Retuen|0|Retuen|BackMsg_03", 3),
        ("|Retuen||Retuen|BackMsg_116", 116),
        ("|Retuen|-1|Retuen|BackMsg_02 unknown org", 2),
        (BOM + "|Retuen|error|Retuen|BackMsg_63", 63),
    ],
)
def test_a_near_answer_with_a_fatal_code_stops_the_job(body: str, number: int) -> None:
    outcome = classify_http(200, body)
    assert outcome.kind is OutcomeKind.FATAL and outcome.answered
    assert (outcome.code, outcome.backmsg) == (f"BackMsg_{number:02d}", number)
    assert outcome.fix is code_of(number).fix  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "body",
    [
        "|Retuen|07|Retuen|BackMsg_84",  # a success code where a failure's would be
        "|Retuen|3|Retuen|BackMsg_85",  # transient
        "|Retuen|0|Retuen|BackMsg_76 phone1",  # a row's rejection
        "|Retuen|9|Retuen|something",
    ],
)
def test_a_near_answer_without_a_fatal_code_is_no_answer(body: str) -> None:
    outcome = classify_http(200, body)
    assert outcome.trouble is Trouble.NOT_AN_ANSWER and not outcome.answered


def test_a_near_answer_reads_a_remote_imports_fatal_codes_only_for_a_remote_import() -> None:
    body = "|Retuen|5|Retuen|BackMsg_89 fetch failed"
    assert classify_http(200, body).trouble is Trouble.NOT_AN_ANSWER
    assert classify_http(200, body, remote=True).kind is OutcomeKind.FATAL


NGINX_HTTPS_PORT = (
    "<html>\r\n<head><title>400 The plain HTTP request was sent to HTTPS port</title></head>"
    "\r\n<body>\r\n<center><h1>400 Bad Request</h1></center>\r\n<center>The plain HTTP request"
    " was sent to HTTPS port</center>\r\n<hr><center>nginx/1.22.1</center>\r\n</body>\r\n"
    "</html>\r\n"
)


def test_nginxs_plain_http_to_https_port_page_is_a_url_error_never_processed() -> None:
    outcome = classify_http(400, NGINX_HTTPS_PORT)
    assert outcome.trouble is Trouble.HTTPS_PORT and outcome.trouble.value == "https-port"
    assert outcome.kind is OutcomeKind.FATAL and not outcome.answered
    assert not outcome.maybe_processed
    assert outcome.message == "400 The plain HTTP request was sent to HTTPS port"
    # Any other 400 is still this request's: too large or malformed.
    other = classify_http(400, NGINX_HTTPS_PORT.replace("HTTPS port", "the moon"))
    assert other.trouble is Trouble.TOO_LARGE and other.kind is OutcomeKind.REJECTED


@given(st.sampled_from(["", BOM, PLAIN_NOTICE, HTML_WARNING, " \n"]), st.text(max_size=40))
def test_noise_before_an_answer_never_changes_what_it_says(noise: str, message: str) -> None:
    clean = parse_answer(format_answer(True, message))
    noisy = parse_answer(noise + format_answer(True, message))
    assert clean is not None and noisy is not None
    assert (noisy.success, noisy.message, noisy.codes) == (
        clean.success,
        clean.message,
        clean.codes,
    )
