"""Secrets in the shapes a security QA pass still found them in (each test fails on the
code before it): a URL's lone userinfo, a settings error quoting a URL or urlsplit's
text, a secret split by a line break, HTML-escaped, ``\\x``-escaped, URL-encoded with
another set of safe characters, a webhook secret's key, the helper process's
environment and `webhooks --json`'s URL.

The forms are written out here by hand, not taken from clonequeue.redaction.
"""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from urllib3.util import parse_url

from clonequeue.cli.webhooks_cmd import _shown
from clonequeue.config import load_settings
from clonequeue.config.redis_urls import mask_query, mask_url
from clonequeue.errors import ConfigError
from clonequeue.producers.parallel import child_env
from clonequeue.redaction import REDACTED, Redactor

TOKEN = "tok-QA5-3c1e9a77b2d04f5e"
RANDOM = ("3c1e9a77", "b2d04f5e")  # runs of the token no escaping changes


# --- 1. mask_url: a lone userinfo is masked whole ----------------------------------------------


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"http://{TOKEN}@127.0.0.1:1/", "http://***@127.0.0.1:1/"),
        (f"http://{TOKEN}:@host/", "http://***@host/"),
        (f"redis://{TOKEN}@127.0.0.1:6379/0", "redis://***@127.0.0.1:6379/0"),
        (f"http://a@{TOKEN}@host/x", "http://***@host/x"),
        (f"redis://:{TOKEN}@h:6379/0", "redis://:***@h:6379/0"),  # as before
        (f"amqp://guest:{TOKEN}@h:5672//", "amqp://guest:***@h:5672//"),  # the user is kept
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"),
        (
            f"sentinel://{TOKEN}@s1:26379/0;sentinel://s2:26379",
            "sentinel://***@s1:26379/0;sentinel://s2:26379",
        ),
    ],
)
def test_mask_url_masks_any_userinfo_and_keeps_a_user_beside_a_password(
    url: str, shown: str
) -> None:
    assert mask_url(url) == shown


def test_mask_query_masks_a_bare_parameter_and_the_fragment() -> None:
    assert mask_query(f"http://h/p?{TOKEN}") == "http://h/p?***"
    assert mask_query(f"http://h/p?a=1&{TOKEN}&t={TOKEN}") == "http://h/p?a=***&***&t=***"
    assert mask_query(f"http://h/p#{TOKEN}") == "http://h/p#***"
    assert mask_query("http://h/p") == "http://h/p"


# --- 2. settings errors name the setting and the rule, never the URL's secret parts --------------


@pytest.mark.parametrize("variable", ["CLONEQUEUE_API_BASE_URL", "CLONEQUEUE_WEBHOOK_URL"])
@pytest.mark.parametrize(
    "value",
    [
        f"ftp://127.0.0.1/?token={TOKEN}",
        f"http:///?token={TOKEN}",
        f"ftp://{TOKEN}@127.0.0.1/",
        f"http://[{TOKEN}]/",
        f"ftp://127.0.0.1/#{TOKEN}",
    ],
)
def test_a_rejected_url_is_shown_masked_with_the_rule(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    message = str(info.value)
    assert not any(run in message for run in RANDOM), message
    assert message.startswith(f"{variable}=")
    assert "must be an http(s) URL" in message


@pytest.mark.parametrize(
    "variable", ["CLONEQUEUE_REDIS_URL", "CLONEQUEUE_BROKER_URL", "CLONEQUEUE_ARTIFACTS_URL"]
)
@pytest.mark.parametrize(
    "value",
    [
        f"bogus://u:{TOKEN}@127.0.0.1/?k={TOKEN}",
        f"redis://[{TOKEN}]:6379/0",
        f"sentinel://[{TOKEN}]:26379",
        f"nosuch://{TOKEN}@x/?k={TOKEN}",
    ],
)
def test_other_url_settings_never_echo_a_secret_part(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigError) as info:
        load_settings(env_file=None)
    assert not any(run in str(info.value) for run in RANDOM), str(info.value)


# --- 5. the redactor: more printable forms -------------------------------------------------------

ODD = "sk_odd'\"&<>\\/%+=?~Zq9xW4mP"  # quotes, HTML's characters, URL-special ones
ODD_PLAIN = ("sk_odd", "Zq9xW4mP")
WHSEC = "whsec_" + base64.b64encode(bytes(range(7, 39))).decode()
KEY = bytes(range(7, 39))
USERINFO_ODD = "sk_u3'\"%<>{}|^&=+;~Zq9xW4mP"  # urllib3 parses it as a password


def _forms() -> dict[str, tuple[str, str, tuple[str, ...]]]:
    """name -> (secret, a text holding it in that form, needles that must be gone)."""
    data = TOKEN.encode()
    odd = ODD.encode()
    wh_body = WHSEC.removeprefix("whsec_")
    urllib3_auth = parse_url(f"http://u:{USERINFO_ODD}@h/").auth or ""
    return {
        "split by a newline": (TOKEN, f"x {TOKEN[:11]}\n{TOKEN[11:]} y", RANDOM),
        "split by CRLF in JSON": (TOKEN, json.dumps(f"{TOKEN[:9]}\r\n{TOKEN[9:]}"), RANDOM),
        "split by a space": (TOKEN, f"{TOKEN[:15]} {TOKEN[15:]}", RANDOM),
        "split by an escaped newline": (TOKEN, f"{TOKEN[:5]}\\n{TOKEN[5:]}", RANDOM),
        "html.escape": (ODD, f"<p>{html.escape(ODD, quote=True)}</p>", ODD_PLAIN),
        "html numeric entities": (
            ODD,
            "".join(f"&#{ord(c)};" if not (c.isalnum() or c == "_") else c for c in ODD),
            ODD_PLAIN,
        ),
        "html hex entities": (
            ODD,
            "".join(f"&#x{ord(c):X};" if not (c.isalnum() or c == "_") else c for c in ODD),
            ODD_PLAIN,
        ),
        "every byte \\x-escaped": (TOKEN, "".join(f"\\x{b:02x}" for b in data), ("\\x33\\x63",)),
        "\\x-escaped in a repr": (
            TOKEN,
            repr("".join(f"\\x{b:02X}" for b in data)),
            ("\\\\x33\\\\x63",),
        ),
        "quote with the userinfo safe set": (
            ODD,
            quote(ODD, safe="!$&'()*+,;=:~"),
            ODD_PLAIN,
        ),
        "quote with / safe": (ODD, quote(ODD, safe="/"), ODD_PLAIN),
        "quote_plus": (ODD, quote_plus(ODD), ODD_PLAIN),
        "urllib3 userinfo": (USERINFO_ODD, urllib3_auth, ("sk_u3", "Zq9xW4mP")),
        "double URL-encoding": (ODD, quote(quote(ODD, safe=""), safe=""), ODD_PLAIN),
        "hex with colons": (TOKEN, data.hex(":"), (data.hex(":")[24:40],)),
        "HEX with spaces": (TOKEN, data.hex(" ").upper(), (data.hex(" ").upper()[24:40],)),
        "odd hex": (ODD, odd.hex(), (odd.hex()[10:30],)),
        "whsec without its prefix": (WHSEC, f"secret={wh_body}", (wh_body[4:36],)),
        "whsec key in hex": (WHSEC, f"key={KEY.hex()}", (KEY.hex()[8:56],)),
        "whsec key in urlsafe base64": (
            WHSEC,
            base64.urlsafe_b64encode(KEY).decode().rstrip("="),
            (base64.urlsafe_b64encode(KEY).decode()[4:36],),
        ),
        "whsec key as a bytes repr": (WHSEC, repr(KEY), (repr(KEY)[10:40],)),
        "JSON surrogate pair": ("pw-😀-Zq9xW4mP", json.dumps("pw-😀-Zq9xW4mP"), ("\\ud83d",)),
    }


@pytest.mark.parametrize("name", sorted(_forms()))
def test_the_redactor_masks_more_forms(name: str) -> None:
    secret, text, needles = _forms()[name]
    assert any(n in text for n in needles)  # the form really holds the secret
    redacted = Redactor([secret]).redact(text)
    assert REDACTED in redacted, redacted
    assert [n for n in needles if n in redacted] == [], redacted


def test_the_new_forms_leave_innocent_text_alone() -> None:
    redactor = Redactor([TOKEN, ODD, WHSEC])
    text = (
        "created audio_1234 for job-00001 in 0.2 s; https://x.example/a.mp3?x=%27 SGVsbG8= "
        "tok QA5 &amp; &#39; \\x74\\x6f 74:6f:6b 07 08 09 0a 0b whsec_ 3c1e b2d0 t o k"
    )
    assert redactor.redact(text) == text


# --- 4. the validating helper's environment ------------------------------------------------------


def test_the_helper_process_environment_holds_no_secret() -> None:
    environ = {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
        "PYTHONPATH": "/opt/lib",
        "CLONEQUEUE_API_TOKEN": TOKEN,
        "CLONEQUEUE_API_TOKEN_FILE": "/run/secrets/jimmyai",
        "CLONEQUEUE_WEBHOOK_SECRET": WHSEC,
        "CLONEQUEUE_WEBHOOK_SECRET_FILE": "/run/secrets/whsec",
        "CLONEQUEUE_FLOWER_BASIC_AUTH": f"ops:{TOKEN}",
        "CLONEQUEUE_REDIS_URL": f"redis://:{TOKEN}@127.0.0.1:6379/0",
        "CLONEQUEUE_SENTINEL_PASSWORD": TOKEN,
        "REDIS_URL": f"redis://:{TOKEN}@127.0.0.1:6379/0",
        "AWS_SECRET_ACCESS_KEY": TOKEN,
    }
    env = child_env(environ)
    assert not any(TOKEN in v or "secrets" in v for v in env.values()), env
    assert {k: env[k] for k in ("PATH", "HOME", "LANG")} == {
        "PATH": "/usr/bin",
        "HOME": "/home/u",
        "LANG": "C.UTF-8",
    }
    root = str(Path(__file__).resolve().parents[2])
    assert env["PYTHONPATH"].split(":")[:2] == [root, "/opt/lib"]


# --- 6. `webhooks --json` shows the URL as the logs do -----------------------------------------


def test_a_listed_delivery_shows_its_url_and_errors_masked() -> None:
    doc: dict[str, Any] = {
        "id": "wh_1",
        "url": f"https://{TOKEN}@hooks.example.com/in?token={TOKEN}&x",
        "error": f"gave up: POST https://hooks.example.com/in?token={TOKEN} 500",
        "attempts": [{"status": None, "error": f"url='/in?token={TOKEN}' timed out"}],
    }
    shown = json.dumps(_shown(doc))
    assert TOKEN not in shown, shown
    assert _shown(doc)["url"] == "https://***@hooks.example.com/in?token=***&***"
    assert re.search(r"/in\?token=\*\*\* 500", shown)


def test_log_lines_mask_query_values_but_not_prose_after_a_bare_scheme() -> None:
    """QA: "…sends on to https://?), then `clonequeue resume`" lost its words to the
    mask: a scheme with no host is prose, not a URL."""
    from clonequeue.logs import mask_query_values

    prose = "an http:// address the site sends on to https://?), then `clonequeue resume`"
    assert mask_query_values(prose) == prose
    assert (
        mask_query_values("GET https://h.example/a?token=abc&x")
        == "GET https://h.example/a?token=***&***"
    )
    assert mask_query_values("GET /api/x?sig=1 HTTP/1.1") == "GET /api/x?sig=*** HTTP/1.1"
    assert mask_query_values("at https://u:p@h/x?sig=1") == "at https://u:p@h/x?sig=***"
