"""The web pages on a phone-sized screen (390 px), in Debian's headless Chromium: nothing wider than the screen,
visible progress while an answer loads, one player per answer, a confirmation before forgetting, errors shown
as errors, sizes in MiB and no chat-command wording."""
from __future__ import annotations

from dataclasses import replace

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from adapters.engines import build_chat_model
from adapters.settings import Settings
from bot.wiring import build_services
from core.types import ConversationKey
from tests.fakes.llm_servers import FakeLLMServer, Reply
from tests.web_harness import chromium, in_thread, live_server

PASSWORD = "correct horse battery"
ANSWER = ["Soup is a fine idea.", " Add some bread", " and a salad on the side."]
OVERFLOW = "return document.documentElement.scrollWidth - window.innerWidth"


@pytest.fixture
async def site(tmp_path, engines):
    async with FakeLLMServer("openai", [Reply(pieces=ANSWER, piece_delay=0.3)]) as llm:
        settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_admin_password=PASSWORD, web_secret="phone",
                            llm_provider="openai", openai_base_url=llm.base_url, openai_api_key="sk-loopback")
        chat_model = build_chat_model(settings)
        services = await build_services(settings, engines=replace(engines, chat_model=chat_model))
        try:
            async with live_server(services) as server:
                yield server
        finally:
            await services.close()
            await chat_model.aclose()


@pytest.fixture
def phone(tmp_path):
    driver = chromium(tmp_path / "chromium-profile")
    driver.set_window_size(390, 844)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.mark.slow
async def test_the_chat_fits_a_phone_shows_progress_and_one_player_per_answer(site, phone, tmp_path):
    def story():
        phone.get(site.url)
        wait = WebDriverWait(phone, 10)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        assert phone.execute_script("return window.innerWidth") <= 400
        empty_overflow = phone.execute_script(OVERFLOW)
        phone.execute_script("""
            window.statuses = [];
            new MutationObserver(() => {
              for (const s of document.querySelectorAll('.bubble .status')) {
                if (!s.hidden && s.textContent && !window.statuses.includes(s.textContent)) window.statuses.push(s.textContent);
              }
            }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true, attributes: true});
        """)
        phone.find_element(By.ID, "text").send_keys("What should I cook tonight?")
        phone.find_element(By.ID, "send").click()
        WebDriverWait(phone, 120, poll_frequency=0.2).until(
            EC.presence_of_element_located((By.CSS_SELECTOR, ".bubble.bot.done")))
        players = phone.execute_script(
            "return [...document.querySelectorAll('.bubble.bot.done audio')].map(a => [a.className, a.duration])")
        WebDriverWait(phone, 20).until(lambda d: d.execute_script(
            "const a = document.querySelector('audio.reply-audio'); return a && a.readyState >= 1 && a.duration > 0"))
        seconds = phone.execute_script("return document.querySelector('audio.reply-audio').duration")
        shot = tmp_path / "phone-chat.png"
        phone.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        answered_overflow = phone.execute_script(OVERFLOW)
        statuses = phone.execute_script("return window.statuses")
        page_text = phone.find_element(By.TAG_NAME, "body").text

        # forgetting asks first; saying no keeps the conversation
        phone.find_element(By.CSS_SELECTOR, "form.forget button").click()
        alert = wait.until(EC.alert_is_present())
        question = alert.text
        alert.dismiss()
        kept = len(phone.find_elements(By.CSS_SELECTOR, "#log .bubble"))
        return empty_overflow, players, seconds, answered_overflow, statuses, page_text, question, kept

    empty_overflow, players, seconds, answered_overflow, statuses, page_text, question, kept = await in_thread(story)
    assert empty_overflow <= 0 and answered_overflow <= 0, (empty_overflow, answered_overflow)
    assert "Thinking…" in statuses
    assert len(players) == 1 and players[0][0] == "reply-audio", players
    assert seconds > 2.0  # the three sentences joined, not the first one alone
    assert "/voice" not in page_text
    assert "cannot be undone" in question and kept == 2
    [visitor] = [u for u in await site.services.users.list() if u.id.startswith("web:")]
    assert await site.services.history.count(ConversationKey(visitor.id, visitor.id)) == 2


@pytest.mark.slow
async def test_admin_pages_fit_a_phone_and_an_upload_error_is_shown_as_an_error(site, phone, tmp_path):
    not_audio = tmp_path / "notes.txt"
    not_audio.write_text("not a recording")

    def story():
        phone.get(f"{site.url}/admin")
        WebDriverWait(phone, 10).until(EC.presence_of_element_located((By.ID, "password"))).send_keys(PASSWORD)
        phone.find_element(By.ID, "login").click()
        WebDriverWait(phone, 10).until(EC.url_contains("/admin/voices"))
        overflow = {}
        for page in ("voices", "avatars", "jobs", "personas", "users"):
            phone.get(f"{site.url}/admin/{page}")
            overflow[page] = phone.execute_script(OVERFLOW)
        phone.get(f"{site.url}/admin/voices")
        label = phone.find_element(By.CSS_SELECTOR, "#voice-form label:nth-of-type(3)").text
        form = phone.find_element(By.ID, "voice-form")
        form.find_element(By.NAME, "name").send_keys("ada")
        form.find_element(By.NAME, "clips").send_keys(str(not_audio))
        old = phone.find_element(By.TAG_NAME, "main")
        form.find_element(By.TAG_NAME, "button").click()
        WebDriverWait(phone, 30).until(EC.staleness_of(old))
        flash = WebDriverWait(phone, 10).until(EC.visibility_of_element_located((By.ID, "flash")))
        shot = tmp_path / "phone-admin-error.png"
        phone.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        return overflow, label, flash.text, flash.get_attribute("class"), flash.value_of_css_property("color")

    overflow, label, text, classes, color = await in_thread(story)
    assert all(v <= 0 for v in overflow.values()), overflow
    assert "MiB" in label
    assert "'notes.txt' is not an audio file" in text
    assert "error" in classes.split() and color.startswith("rgba(180, 35, 24")


SMALL_TARGETS = """
    return [...document.querySelectorAll('button, select, input[type=text], input[type=password]')]
      .filter(el => el.offsetParent !== null)
      .map(el => [el.id || el.name || el.textContent.trim(), el.getBoundingClientRect().height])
      .filter(([, h]) => h < 44)
"""


@pytest.mark.slow
async def test_a_phone_gets_fingertip_sized_buttons_true_labels_and_a_question_before_a_delete(site, phone):
    from tests.lifecycle_fixtures import voice_with_versions

    await voice_with_versions(site.services, "anna")

    def story():
        phone.get(site.url)
        WebDriverWait(phone, 10).until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        small = {"chat": phone.execute_script(SMALL_TARGETS)}
        record = phone.find_element(By.ID, "record")
        said = {record.text.strip(), record.get_attribute("aria-label") or record.text.strip(),
                record.get_attribute("title") or record.text.strip()}
        box_labels = phone.execute_script("return [...document.getElementById('text').labels].map(l => l.textContent.trim())")
        phone.get(f"{site.url}/admin")
        WebDriverWait(phone, 10).until(EC.presence_of_element_located((By.ID, "password"))).send_keys(PASSWORD)
        phone.find_element(By.ID, "login").click()
        WebDriverWait(phone, 10).until(EC.url_contains("/admin/voices"))
        for page in ("voices", "avatars", "jobs", "users"):
            phone.get(f"{site.url}/admin/{page}")
            small[page] = phone.execute_script(SMALL_TARGETS)
        phone.get(f"{site.url}/admin/voices")
        phone.find_element(By.CSS_SELECTOR, "#voice-anna form.delete button").click()
        alert = WebDriverWait(phone, 10).until(EC.alert_is_present())
        question = alert.text
        alert.dismiss()
        return small, said, box_labels, question

    small, said, box_labels, question = await in_thread(story)
    assert not any(small.values()), small
    assert said == {"Hold to talk"}, said
    assert box_labels == ["Message"]
    assert "anna" in question and "cannot be undone" in question
    assert await site.services.voices.get("anna") is not None  # saying no deleted nothing
