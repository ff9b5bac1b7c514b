"""The web channel in a real browser: talk with a real recording, admin login, voices, live job progress."""
from __future__ import annotations

import re
from dataclasses import replace

import aiohttp
import pytest
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

from adapters.media import decode_audio, encode_wav
from adapters.settings import Settings
from bot.common.avatars import list_avatars
from bot.wiring import build_services
from core.types import ConversationKey, JobStatus, VoiceEngine
from storage.avatars import AvatarRepository
from tests.speech import speech_clips
from tests.web_harness import LevelMeterAvatar, chromium, in_thread, live_server

PASSWORD = "correct horse battery"


@pytest.fixture
async def site(tmp_path, engines):
    settings = Settings(_env_file=None, data_dir=tmp_path / "var", web_admin_password=PASSWORD,
                        web_secret="web-test-secret", web_max_audio_bytes=2 * 1024 * 1024, avatar="meter",
                        avatar_min_seconds=2.0)
    services = await build_services(settings, engines=replace(engines, renderer=LevelMeterAvatar()))
    try:
        async with live_server(services) as server:
            yield server
    finally:
        await services.close()


@pytest.fixture
def browser(tmp_path):
    driver = chromium(tmp_path / "chromium-profile")
    try:
        yield driver
    finally:
        driver.quit()


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z']+", text.lower()))


def submit(driver, button) -> str:
    """Click a form's button and return the notice of the page it lands on (never the old page's)."""
    page = driver.find_element(By.TAG_NAME, "main")
    button.click()
    WebDriverWait(driver, 60).until(EC.staleness_of(page))
    return WebDriverWait(driver, 10).until(EC.visibility_of_element_located((By.ID, "flash"))).text


def log_in(driver, url: str, password: str) -> None:
    driver.get(f"{url}/admin")
    WebDriverWait(driver, 10).until(EC.presence_of_element_located((By.ID, "password"))).send_keys(password)
    driver.find_element(By.ID, "login").click()


async def test_a_spoken_question_gets_a_streamed_spoken_answer(site, browser, tmp_path):
    clip, _, truth = next(c for c in speech_clips("en", min_seconds=3.0) if c[0].stem == "agent-alreadyon")
    wrong = tmp_path / "notes.txt"
    wrong.write_text("not audio")

    def story():
        browser.get(site.url)
        wait = WebDriverWait(browser, 10)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        # a wrong file type is refused with a message that says what to send
        browser.find_element(By.ID, "file").send_keys(str(wrong))
        problem = wait.until(EC.visibility_of_element_located((By.ID, "problem")))
        assert "not an audio file" in problem.text

        # note when the transcript shows and when the reply is whole: parts must arrive while it is made
        browser.execute_script("""
            window.seen = {};
            new MutationObserver(() => {
              const user = document.querySelector('.bubble.user:not(.pending) .text');
              if (user && user.textContent.trim() && !window.seen.transcript) window.seen.transcript = performance.now();
              if (document.querySelector('audio.reply-audio') && !window.seen.audio) window.seen.audio = performance.now();
              if (document.querySelector('.bubble.bot.done') && !window.seen.done) window.seen.done = performance.now();
            }).observe(document.getElementById('log'), {subtree: true, childList: true, characterData: true, attributes: true});
        """)
        browser.find_element(By.ID, "file").send_keys(str(clip))
        slow = WebDriverWait(browser, 240, poll_frequency=0.2)
        slow.until(lambda d: d.execute_script("return window.seen.transcript"))
        heard = browser.find_element(By.CSS_SELECTOR, ".bubble.user .text").text
        slow.until(lambda d: d.execute_script(
            "const a = document.querySelector('audio.reply-audio');"
            "return a && a.currentSrc && a.readyState >= 1 && a.duration > 0.2 && !a.error"))
        slow.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".bubble.bot.done")))
        # the talking-head clip came after the speech and is a video the browser can decode
        video = slow.until(lambda d: d.execute_script(
            "const v = document.querySelector('video.reply-video');"
            "return v && v.readyState >= 1 && v.videoWidth > 0 && v.duration > 0.2 ? [v.videoWidth, v.duration] : null"))
        seen = browser.execute_script("return window.seen")
        # the reply audio is served in byte ranges too, as Safari asks for it
        ranged = browser.execute_async_script(
            "const done = arguments[0];"
            "fetch(document.querySelector('audio.reply-audio').src, {headers: {Range: 'bytes=0-3'}})"
            ".then(async r => done([r.status, r.headers.get('content-range'), await r.text()]));")
        answer = browser.find_element(By.CSS_SELECTOR, ".bubble.bot .text").text
        shot = tmp_path / "chat.png"
        browser.save_screenshot(str(shot))
        print(f"screenshot: {shot}")
        # the page is reloaded: the conversation is still there, from the history store
        browser.get(site.url)
        shown = [e.text for e in browser.find_elements(By.CSS_SELECTOR, "#log .bubble .text")]
        return heard, seen, answer, shown, video, ranged

    heard, seen, answer, shown, video, ranged = await in_thread(story)
    assert ranged[0] == 206 and ranged[1].startswith("bytes 0-3/") and ranged[2] == "RIFF"
    assert video[0] == 96
    assert len(words(heard) & words(truth)) >= len(words(truth)) // 2, (heard, truth)
    assert answer.strip()
    assert seen["transcript"] < seen["audio"] <= seen["done"]
    # the transcript was on screen well before the answer was finished, so it streamed
    assert seen["done"] - seen["transcript"] > 200, seen
    assert shown == [heard, answer]
    users = [u for u in await site.services.users.list() if u.id.startswith("web:")]
    assert len(users) == 1
    assert await site.services.history.count(ConversationKey(users[0].id, users[0].id)) == 2


async def test_holding_the_button_records_the_microphone_and_sends_it(site, tmp_path):
    clip, seconds, truth = next(c for c in speech_clips("en", min_seconds=2.5) if c[0].stem == "agent-newlocation")
    # Chromium's fake capture device plays this file as the microphone, so MediaRecorder records real speech
    mic = tmp_path / "mic.wav"
    mic.write_bytes(encode_wav(decode_audio(clip.read_bytes())))
    driver = chromium(tmp_path / "profile", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                      f"--use-file-for-fake-audio-capture={mic}")

    def story():
        driver.get(site.url)
        wait = WebDriverWait(driver, 10)
        wait.until(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready") == "1")
        driver.find_element(By.ID, "speak").click()  # text only: this story is about the microphone
        button = driver.find_element(By.ID, "record")
        ActionChains(driver).click_and_hold(button).pause(0.1).perform()
        wait.until(lambda d: "recording" in button.get_attribute("class"))
        ActionChains(driver).pause(seconds + 0.5).release(button).perform()
        slow = WebDriverWait(driver, 240, poll_frequency=0.2)
        slow.until(EC.presence_of_element_located((By.CSS_SELECTOR, ".bubble.bot.done")))
        heard = driver.find_element(By.CSS_SELECTOR, ".bubble.user .text").text
        # then a typed follow-up in the same conversation
        driver.find_element(By.ID, "text").send_keys("Thank you. Goodbye!")
        driver.find_element(By.ID, "send").click()
        slow.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".bubble.bot.done")) == 2)
        texts = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#log .bubble .text")]
        return heard, texts, len(driver.find_elements(By.CSS_SELECTOR, "audio.reply-audio"))

    try:
        heard, texts, audio_parts = await in_thread(story)
    finally:
        driver.quit()
    assert len(words(heard) & words(truth)) >= len(words(truth)) // 2, (heard, truth)
    assert texts[2] == "Thank you. Goodbye!" and texts[3].strip() and len(texts) == 4
    assert audio_parts == 0
    [visitor] = [u for u in await site.services.users.list() if u.id.startswith("web:")]
    assert await site.services.history.count(ConversationKey(visitor.id, visitor.id)) == 4


async def test_admin_login_refuses_a_wrong_password_and_a_denied_visitor_is_refused(site, browser):
    await site.services.users.touch("tg:42", "<b>Ada</b>")

    def story():
        log_in(browser, site.url, "not the password")
        error = WebDriverWait(browser, 10).until(EC.visibility_of_element_located((By.ID, "login-error"))).text
        browser.get(f"{site.url}/admin/users")
        still_out = "/admin/login" in browser.current_url
        log_in(browser, site.url, PASSWORD)
        WebDriverWait(browser, 10).until(EC.url_contains("/admin/voices"))
        browser.get(f"{site.url}/admin/users")
        name = browser.find_element(By.CSS_SELECTOR, "tr[data-user-id='tg:42'] td:nth-child(2)").text
        denied = submit(browser, browser.find_element(By.CSS_SELECTOR, "tr[data-user-id='tg:42'] button"))
        return error, still_out, name, denied

    error, still_out, name, denied = await in_thread(story)
    assert denied == "tg:42 is now denied."
    assert name == "<b>Ada</b>"  # shown as text, never as markup
    assert error == "Wrong password."
    assert still_out
    assert (await site.services.users.get("tg:42")).allowed is False


async def test_an_uploaded_avatar_video_becomes_a_job_whose_progress_bar_moves(site, browser, tmp_path):
    from PIL import Image

    from geneface.testclip import make_clip, portrait, speech

    # a real face talking (a portrait whose mouth follows real speech); the site accepts 2 s videos
    video = tmp_path / "alice.mp4"
    video.write_bytes(make_clip(speech([c[0] for c in speech_clips("en", 1.0)[:3]], seconds=2.5)).mp4())
    not_video = speech_clips("en")[0][0]
    photo = tmp_path / "carol.png"
    Image.fromarray(portrait()[0]).save(photo)
    jobs = site.services.jobs

    def upload(path, name: str) -> str:
        form = browser.find_element(By.ID, "avatar-form")
        form.find_element(By.NAME, "name").send_keys(name)
        form.find_element(By.NAME, "video").send_keys(str(path))
        text = submit(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "jobs").get_attribute("data-live") == "1")
        return text

    def open_avatars():
        log_in(browser, site.url, PASSWORD)
        WebDriverWait(browser, 10).until(EC.url_contains("/admin/voices"))
        browser.get(f"{site.url}/admin/avatars")
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "jobs").get_attribute("data-live") == "1")
        refused = upload(not_video, "bob")
        accepted = upload(video, "alice")
        form = browser.find_element(By.ID, "photo-form")
        form.find_element(By.NAME, "name").send_keys("carol")
        form.find_element(By.NAME, "photo").send_keys(str(photo))
        made = submit(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        WebDriverWait(browser, 10).until(lambda d: d.find_element(By.ID, "jobs").get_attribute("data-live") == "1")
        return refused, accepted, made

    refused, accepted, made = await in_thread(open_avatars)
    assert made == "Avatar 'carol' is ready: it talks from this photo."
    assert f"'{not_video.name}' is not a video file" in refused
    assert accepted.startswith("Avatar 'alice'"), accepted
    [job] = await jobs.list()
    assert (job.kind, job.target, job.status) == ("avatar", "alice", JobStatus.QUEUED)
    assert accepted == f"Avatar 'alice': training job {job.id} queued."
    assert [(a.name, a.ready) for a in await list_avatars(site.services)] == [("alice", False), ("carol", True)]
    # from here on the test plays the worker's part
    assert (await jobs.claim_next()).id == job.id

    def bar_value(expected: int):
        def read():
            return WebDriverWait(browser, 15, poll_frequency=0.1).until(lambda d: d.execute_script(
                f"const p = document.querySelector(`tr[data-job-id='{job.id}'] progress`);"
                f"return p !== null && p.value === {expected};")) and expected
        return read

    assert await in_thread(bar_value(0)) == 0
    await jobs.report(job.id, step=25, progress=0.25, eta_seconds=30)
    assert await in_thread(bar_value(25)) == 25
    await jobs.report(job.id, step=70, progress=0.70, eta_seconds=9)
    assert await in_thread(bar_value(70)) == 70
    shot = tmp_path / "jobs.png"
    await in_thread(browser.execute_script, "document.getElementById('jobs').scrollIntoView({block: 'center'})")
    await in_thread(browser.save_screenshot, str(shot))
    print(f"screenshot: {shot}")

    def cancel():
        return submit(browser, browser.find_element(By.CSS_SELECTOR, f"tr[data-job-id='{job.id}'] button.danger"))

    assert "asked to stop" in await in_thread(cancel)
    # the worker learns of it at its next report
    assert await jobs.report(job.id, step=71, progress=0.71) is False
    await jobs.finish(job.id, JobStatus.CANCELLED, "cancelled")
    assert await in_thread(lambda: WebDriverWait(browser, 10).until(lambda d: d.execute_script(
        f"const s = document.querySelector(`tr[data-job-id='{job.id}'] .status`); return s && s.textContent === 'cancelled'")))


async def test_admin_adds_a_voice_sees_its_transcript_and_corrects_it(site, browser):
    clip, _, truth = next(c for c in speech_clips("en", min_seconds=2.5) if c[0].stem == "agent-pass")

    def story():
        log_in(browser, site.url, PASSWORD)
        WebDriverWait(browser, 10).until(EC.url_contains("/admin/voices"))
        form = browser.find_element(By.ID, "voice-form")
        form.find_element(By.NAME, "name").send_keys("ada")
        form.find_element(By.NAME, "clips").send_keys(str(clip))
        # what the upload's status line says, kept across the page change that ends it
        browser.execute_script("""
            new MutationObserver(() => {
              const note = document.querySelector('#voice-form .upload-status');
              const seen = JSON.parse(sessionStorage.getItem('statuses') || '[]');
              if (note && note.textContent && !seen.includes(note.textContent)) {
                seen.push(note.textContent);
                sessionStorage.setItem('statuses', JSON.stringify(seen));
              }
            }).observe(document.getElementById('voice-form'), {subtree: true, childList: true, characterData: true});
        """)
        flash = submit(browser, form.find_element(By.CSS_SELECTOR, "button[type=submit]"))
        statuses = browser.execute_script("return JSON.parse(sessionStorage.getItem('statuses') || '[]')")
        field = browser.find_element(By.CSS_SELECTOR, "#voice-ada form.transcript input[name=transcript]")
        automatic = field.get_attribute("value")
        field.clear()
        field.send_keys("Please enter your password, then the pound key.")
        saved = submit(browser, browser.find_element(By.CSS_SELECTOR, "#voice-ada form.transcript button"))
        return flash, automatic, saved, statuses

    flash, automatic, saved, statuses = await in_thread(story)
    # while the server transcribes, the page says so and counts the seconds
    assert any(re.fullmatch(r"Uploaded; transcribing the recordings .*… \d+ s", s) for s in statuses), statuses
    assert saved == "Transcript saved."
    assert "Voice 'ada': 1 clip(s)" in flash and "training job" in flash
    assert len(words(automatic) & words(truth)) >= len(words(truth)) // 2, (automatic, truth)
    [stored] = await site.services.voices.clips("ada")
    assert (stored.transcript, stored.transcript_source) == ("Please enter your password, then the pound key.", "edited")


async def test_uploads_are_size_limited_type_checked_and_forms_are_protected(site):
    # unsafe: the jar must keep cookies from a bare IP address like 127.0.0.1
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        page = await (await http.get(site.url + "/")).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        headers = {"X-CSRF-Token": token}

        def upload(name: str, data: bytes) -> aiohttp.FormData:
            form = aiohttp.FormData()
            form.add_field("audio", data, filename=name, content_type="application/octet-stream")
            return form

        r = await http.post(site.url + "/chat/turn", data=upload("q.ogg", b"x" * (3 * 1024 * 1024)), headers=headers)
        assert r.status == 413 and "the limit is 2 MiB" in (await r.json())["message"]
        r = await http.post(site.url + "/chat/turn", data=upload("q.exe", b"MZ\x90\x00"), headers=headers)
        assert r.status == 400 and "'q.exe' is not an audio file" in (await r.json())["message"]
        r = await http.post(site.url + "/chat/turn", data=upload("q.ogg", b"OggS but not really"), headers=headers)
        assert r.status == 400 and (await r.json())["code"] == "unreadable_audio"
        # a post without the token (another site's form) changes nothing and says why on the page
        r = await http.post(site.url + "/chat/turn", data=upload("q.ogg", b"x" * 100), allow_redirects=False)
        assert r.status == 303
        assert "This page has expired" in await (await http.get(site.url + "/")).text()
        r = await http.post(site.url + "/admin/voices", data={"csrf": token, "name": "x"}, allow_redirects=False)
        assert r.status == 303 and r.headers["location"].startswith("/admin/login")
        r = await http.get(site.url + "/media/not-a-key")
        assert r.status == 404
        # the unreadable upload above made this visitor a user
        [visitor] = [u for u in await site.services.users.list() if u.id.startswith("web:")]

        # choosing the chat's voice and persona: only ready voices, only known personas
        await site.services.voices.upsert("plain", VoiceEngine.TTS, ready=True)
        await site.services.voices.upsert("busy", VoiceEngine.LITE, ready=False)
        await AvatarRepository(site.services.sessions).upsert("carol", "photo", ready=True)
        r = await http.post(site.url + "/chat/settings", data={"csrf": token, "voice": "plain", "persona": "zh", "avatar": "carol"})
        page = await r.text()
        assert "Answering as &#39;zh&#39; in the voice &#39;plain&#39;, shown as &#39;carol&#39;." in page
        assert '<option selected>plain</option>' in page and '<option selected>carol</option>' in page
        chat = await site.services.chats.get(visitor.id)
        assert (chat.voice, chat.persona, chat.avatar) == ("plain", "zh", "carol")
        r = await http.post(site.url + "/chat/settings", data={"csrf": token, "voice": "busy", "persona": "zh"})
        assert "The voice &#39;busy&#39; is still being trained" in await r.text()
        assert (await site.services.chats.get(visitor.id)).voice == "plain"

        # once denied, a turn is refused before any model runs
        await site.services.users.set_allowed(visitor.id, False)
        r = await http.post(site.url + "/chat/turn", data={"text": "hello"}, headers=headers)
        assert r.status == 403 and (await r.json())["code"] == "not_allowed"

        # guessing the admin password: five wrong tries, then even the right one waits
        login = await (await http.get(site.url + "/admin/login")).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
        for _ in range(5):
            r = await http.post(site.url + "/admin/login", data={"csrf": token, "password": "guess"})
            assert r.status == 401
        r = await http.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD})
        assert r.status == 429 and "Too many wrong passwords" in await r.text()


async def test_logging_out_ends_the_admin_login_even_for_a_copied_cookie(site):
    async def logged_in_cookie(http: aiohttp.ClientSession) -> tuple[str, str]:
        login = await (await http.get(site.url + "/admin/login")).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
        r = await http.post(site.url + "/admin/login", data={"csrf": token, "password": PASSWORD}, allow_redirects=False)
        assert r.status == 303
        page = await (await http.get(site.url + "/admin/voices")).text()
        token = re.search(r'name="csrf-token" content="([^"]+)"', page).group(1)
        return http.cookie_jar.filter_cookies(site.url)["doppel_session"].value, token

    async def admin_page_status(cookie: str) -> int:
        async with aiohttp.ClientSession(cookies={"doppel_session": cookie}) as other:
            r = await other.get(site.url + "/admin/voices", allow_redirects=False)
            return r.status

    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        cookie, token = await logged_in_cookie(http)
        assert await admin_page_status(cookie) == 200  # the copy works while the login lasts
        r = await http.post(site.url + "/admin/logout", data={"csrf": token}, allow_redirects=False)
        assert r.status == 303
    assert await admin_page_status(cookie) == 303  # and not after logging out


async def test_logging_out_from_a_page_whose_token_has_expired_still_logs_out(site):
    async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http:
        login = await (await http.get(site.url + "/admin/login")).text()
        stale = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)  # logging in replaces it
        r = await http.post(site.url + "/admin/login", data={"csrf": stale, "password": PASSWORD}, allow_redirects=False)
        assert r.status == 303
        assert (await http.get(site.url + "/admin/voices", allow_redirects=False)).status == 200
        r = await http.post(site.url + "/admin/logout", data={"csrf": stale})  # a tab opened before the login
        landed = str(r.url)
        assert r.status == 200 and landed.endswith("/admin/login"), (r.status, landed)
        assert (await http.get(site.url + "/admin/voices", allow_redirects=False)).status == 303
