"""axe-core (vendored in tests/e2e/vendor) run in a page: WCAG 2.1 A/AA and best practice."""

from pathlib import Path

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"]


def violations(page, impacts=("serious", "critical")):
    """[(rule id, impact, help, [targets])] of the page's violations of those impacts. The page's
    context must be made with bypass_csp=True: axe is injected as a script of its own."""
    page.add_script_tag(content=AXE)
    found = page.evaluate("(tags) => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    return [
        (v["id"], v["impact"], v["help"], [node["target"] for node in v["nodes"]][:5])
        for v in found["violations"]
        if v["impact"] in impacts
    ]
