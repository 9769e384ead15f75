"""The Content-Security-Policy holds in a real browser: an injected inline script does not run,
and the browser reports the refusal (which the other browser tests treat as a failure)."""

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_an_injected_inline_script_is_refused_by_the_browser(live_server, browser, alice):
    context = browser.new_context()  # not watched: this test expects a refusal
    page = context.new_page()
    refusals = []
    page.on("console", lambda m: "Content Security Policy" in m.text and refusals.append(m.text))
    page.goto(f"{live_server.url}/login/")

    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.injected = true";
        document.head.append(script);
    }""")

    assert page.evaluate("window.injected") is None
    page.wait_for_timeout(100)
    assert refusals and "script-src 'self'" in refusals[0]
    context.close()
