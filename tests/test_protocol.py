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
    assert parse_answer(body) is None


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
        (500, "boom", Trouble.SERVER_ERROR, False, "boom"),
        (404, "<title>404 Not Found</title>", Trouble.CLIENT_ERROR, False, "404 Not Found"),
        (414, "<title>414 Request-URI Too Large</title>", Trouble.TOO_LARGE, False,
         "414 Request-URI Too Large"),
        (200, "<!DOCTYPE html><title>Maintenance &amp; more</title>", Trouble.NOT_AN_ANSWER, False,
         "Maintenance & more"),
        (200, "", Trouble.NOT_AN_ANSWER, False, "(an empty body)"),
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
