"""The Import API as bulkimport speaks it: pure functions and values, no I/O.

- ``params``: the 22 parameters of a call, their URL encoding, and masking the password;
- ``records``: one record as ``field=value||field=value``;
- ``codes``: the vendor's ``BackMsg_NN`` codes, what each means and how it is treated;
- ``answers``: parsing and classifying what came back into an ``Outcome``.
"""

from bulkimport.protocol.answers import (
    ANSWER_MARKER,
    MAX_RETRY_AFTER_S,
    MESSAGE_LIMIT,
    Answer,
    Outcome,
    Trouble,
    classify_answer,
    classify_http,
    classify_trouble,
    format_answer,
    looks_like_html,
    one_line,
    parse_answer,
    parse_retry_after,
)
from bulkimport.protocol.codes import CODES, Code, Fix, OutcomeKind, code_of, describe_code
from bulkimport.protocol.params import (
    ENDPOINT_PATH,
    PARAMETER_NAMES,
    ChangePackage,
    DupDialList,
    DupWay,
    ImportOptions,
    ImportParams,
    PasswordType,
    Source,
    UserType,
    encode_params,
    mask_secrets,
    md5_hex,
    parse_yes_no,
    secret_forms,
    yes_no,
)
from bulkimport.protocol.records import RECORD_SEPARATOR, decode_record, encode_record

__all__ = [
    "ANSWER_MARKER",
    "CODES",
    "ENDPOINT_PATH",
    "MAX_RETRY_AFTER_S",
    "MESSAGE_LIMIT",
    "PARAMETER_NAMES",
    "RECORD_SEPARATOR",
    "Answer",
    "ChangePackage",
    "Code",
    "DupDialList",
    "DupWay",
    "Fix",
    "ImportOptions",
    "ImportParams",
    "Outcome",
    "OutcomeKind",
    "PasswordType",
    "Source",
    "Trouble",
    "UserType",
    "classify_answer",
    "classify_http",
    "classify_trouble",
    "code_of",
    "decode_record",
    "describe_code",
    "encode_params",
    "encode_record",
    "format_answer",
    "looks_like_html",
    "mask_secrets",
    "md5_hex",
    "one_line",
    "parse_answer",
    "parse_retry_after",
    "parse_yes_no",
    "secret_forms",
    "yes_no",
]
