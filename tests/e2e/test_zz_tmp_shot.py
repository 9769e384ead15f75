import pytest
from tests.factories import make_images
from tests.e2e.test_gallery import sign_in
pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_shot(live_server, page, alice, team, scheme):
    make_images(team, alice, 12)
    page.emulate_media(color_scheme=scheme)
    page.set_viewport_size({"width": 1280, "height": 420})
    sign_in(page, live_server)
    page.goto(f"{live_server.url}/gallery/?q=Image")
    page.screenshot(path=f"/tmp/shot-filterbar-{scheme}.png")
