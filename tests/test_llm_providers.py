"""The real OpenAI, ZhipuAI and Gemini SDKs against loopback servers that speak each provider's wire format.

Models are built the way the bot builds them (`build(settings)`), so settings, retries, timeouts
and the fallback chain are what a deployment gets.
"""
from __future__ import annotations

import asyncio
import logging
import traceback

import pytest

from adapters.engines import build_chat_model
from adapters.settings import Settings
from core.errors import ContentRefused, ProviderAuthError, ProviderError
from core.types import ChatMessage, LLMOptions
from tests.fakes.llm_servers import FakeLLMServer, Reply, dead_url

KEYS = {"openai": "sk-test-OPENAI-0123456789abcdef", "zhipu": "zp-test-ZHIPU.0123456789abcdef",
        "gemini": "AIza-test-GEMINI-0123456789abcdef"}
MODELS = {"openai": "gpt-test-mini", "zhipu": "glm-4-flash", "gemini": "gemini-2.5-flash"}
DIALECTS = ["openai", "zhipu", "gemini"]

CONVERSATION = [
    ChatMessage("system", "You are brief and friendly."),
    ChatMessage("user", "My name is Ann."),
    ChatMessage("assistant", "Nice to meet you, Ann."),
    ChatMessage("user", "What is my name?"),
]


def provider_settings(tmp_path, dialect: str, base_url: str, **extra) -> Settings:
    fields = dict(_env_file=None, data_dir=tmp_path / "var", llm_provider=dialect, llm_model=MODELS[dialect],
                  llm_retries=2, llm_timeout=5.0, llm_temperature=0.3, llm_max_tokens=90)
    fields[f"{dialect}_base_url"] = base_url
    fields[f"{dialect}_api_key"] = KEYS[dialect]
    fields.update(extra)
    return Settings(**fields)


@pytest.fixture
async def build():
    """build_chat_model, with the models' HTTP clients closed on the test's own loop afterwards."""
    built = []

    def make(settings: Settings):
        built.append(build_chat_model(settings))
        return built[-1]

    yield make
    for model in built:
        await model.aclose()


async def collect(model, messages=CONVERSATION, options: LLMOptions | None = None) -> list[str]:
    return [p async for p in model.stream(messages, options or LLMOptions(max_tokens=120))]


def sent_history(dialect: str, body: dict) -> tuple[str | None, list[tuple[str, str]]]:
    """(system prompt, [(role, text)]) as the request put them on the wire."""
    if dialect == "gemini":
        system = body.get("systemInstruction")
        system_text = " ".join(p["text"] for p in system["parts"]) if system else None
        return system_text, [(c["role"], " ".join(p["text"] for p in c["parts"])) for c in body["contents"]]
    system_text = next((m["content"] for m in body["messages"] if m["role"] == "system"), None)
    return system_text, [(m["role"], m["content"]) for m in body["messages"] if m["role"] != "system"]


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_request_carries_history_roles_system_prompt_and_sampling(tmp_path, dialect, build):
    async with FakeLLMServer(dialect) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        pieces = await collect(model, options=LLMOptions(max_tokens=120))
    assert pieces == ["Hello", " there.", " How are", " you?"]
    [request] = server.requests
    body = request.body
    system, turns = sent_history(dialect, body)
    assistant = "model" if dialect == "gemini" else "assistant"
    assert system == "You are brief and friendly."
    assert turns == [("user", "My name is Ann."), (assistant, "Nice to meet you, Ann."), ("user", "What is my name?")]
    if dialect == "gemini":
        assert request.path == f"/v1/models/{MODELS[dialect]}:streamGenerateContent" and request.query == {"alt": "sse"}
        assert request.headers["x-goog-api-key"] == KEYS[dialect]
        # settings' max tokens (90) is below the request's (120): the smaller wins; 2.5 Flash is told not to think
        assert body["generationConfig"] == {"temperature": 0.3, "maxOutputTokens": 90, "thinkingConfig": {"thinking_budget": 0}}
    else:
        assert body["model"] == MODELS[dialect] and body["stream"] is True
        assert request.headers["Authorization"] == f"Bearer {KEYS[dialect]}"
        assert body["temperature"] == 0.3 and body["max_tokens"] == 90
    # the persona's limit caps the configured one
    async with FakeLLMServer(dialect) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        await collect(model, options=LLMOptions(max_tokens=40))
    body = server.requests[0].body
    assert (body["generationConfig"]["maxOutputTokens"] if dialect == "gemini" else body["max_tokens"]) == 40


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_chunks_arrive_in_order_while_the_server_is_still_writing(tmp_path, dialect, build):
    release = asyncio.Event()
    words = ["One", " two", " three", " four", " five."]
    async with FakeLLMServer(dialect, [Reply(pieces=words, hold_after=2, release=release)]) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        stream = model.stream(CONVERSATION, LLMOptions()).__aiter__()
        early = [await asyncio.wait_for(stream.__anext__(), 5), await asyncio.wait_for(stream.__anext__(), 5)]
        assert early == ["One", " two"]
        assert server.pieces_sent == 2 and server.finished_streams == 0  # the rest is not even written yet
        release.set()
        rest = [p async for p in stream]
    assert early + rest == words


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_429_then_200_is_retried(tmp_path, dialect, build):
    replies = [Reply(status=429, headers={"Retry-After": "0"}), Reply(pieces=["Back", " again."])]
    async with FakeLLMServer(dialect, replies) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        assert await collect(model) == ["Back", " again."]
    assert len(server.requests) == 2


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_server_errors_exhaust_retries_then_say_so(tmp_path, dialect, build):
    async with FakeLLMServer(dialect, [Reply(status=503)]) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url, llm_retries=1))
        with pytest.raises(ProviderError) as caught:
            await collect(model)
    assert len(server.requests) == 2  # the first try and one retry
    assert caught.value.code == "provider_unavailable"
    assert "not answering" in caught.value.message


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_bad_key_gives_a_clear_message_without_retrying(tmp_path, dialect, build):
    async with FakeLLMServer(dialect, [Reply(status=401)]) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        with pytest.raises(ProviderAuthError) as caught:
            await collect(model)
    assert len(server.requests) == 1
    message = caught.value.message
    assert f"The {dialect} language model rejected the bot's API key" in message and "admin" in message


async def test_gemini_invalid_key_answered_with_400_is_an_auth_error(tmp_path, build):
    body = {"error": {"code": 400, "message": "API key not valid. Please pass a valid API key.", "status": "INVALID_ARGUMENT",
                      "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID"}]}}
    async with FakeLLMServer("gemini", [Reply(status=400, error=body)]) as server:
        model = build(provider_settings(tmp_path, "gemini", server.base_url))
        with pytest.raises(ProviderAuthError):
            await collect(model)


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_dead_provider_falls_back_to_the_next(tmp_path, dialect, build):
    backup = "openai" if dialect != "openai" else "gemini"
    async with FakeLLMServer(backup, [Reply(pieces=["From", " the backup."])]) as server:
        settings = provider_settings(tmp_path, dialect, dead_url(dialect), llm_retries=1, llm_fallback=[backup],
                                     **{f"{backup}_base_url": server.base_url, f"{backup}_api_key": KEYS[backup]})
        model = build(settings)
        assert await collect(model) == ["From", " the backup."]
    assert len(server.requests) == 1


async def test_fallback_entries_may_name_their_model(tmp_path, build):
    async with FakeLLMServer("gemini") as server:
        settings = provider_settings(tmp_path, "zhipu", dead_url("zhipu"), llm_retries=0, llm_fallback=["gemini:gemini-2.5-pro"],
                                     gemini_base_url=server.base_url, gemini_api_key=KEYS["gemini"])
        await collect(build(settings))
    assert server.requests[0].path == "/v1/models/gemini-2.5-pro:streamGenerateContent"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_text_already_streamed_is_never_repeated(tmp_path, dialect, build):
    """A connection lost mid-answer is not retried: the first sentence may already be spoken."""
    replies = [Reply(pieces=["First part.", " Second", " part."], abort_after=1), Reply(pieces=["Other", " answer."])]
    async with FakeLLMServer(dialect, replies) as server:
        model = build(provider_settings(tmp_path, dialect, server.base_url))
        got: list[str] = []
        with pytest.raises(ProviderError):
            async for piece in model.stream(CONVERSATION, LLMOptions()):
                got.append(piece)
    assert got == ["First part."]
    assert len(server.requests) == 1


def backup_for(dialect: str) -> str:
    return "gemini" if dialect == "openai" else "openai"


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_a_silent_provider_times_out_and_falls_back(tmp_path, dialect, build):
    never = asyncio.Event()
    backup = backup_for(dialect)
    async with FakeLLMServer(dialect, [Reply(hold_after=0, release=never)]) as silent, \
            FakeLLMServer(backup, [Reply(pieces=["Backup", " answer."])]) as server:
        settings = provider_settings(tmp_path, dialect, silent.base_url, llm_timeout=0.5, llm_retries=0, llm_fallback=[backup],
                                     **{f"{backup}_base_url": server.base_url, f"{backup}_api_key": KEYS[backup]})
        started = asyncio.get_running_loop().time()
        assert await collect(build(settings)) == ["Backup", " answer."]
        assert asyncio.get_running_loop().time() - started < 4
        never.set()
    assert len(silent.requests) == 1


@pytest.mark.parametrize("dialect,reply", [
    ("openai", Reply(pieces=["I"], finish_reason="content_filter")),
    ("zhipu", Reply(status=400, error={"error": {"code": "1301", "message": "系统检测到输入或生成内容可能包含不安全或敏感内容"}})),
    ("zhipu", Reply(pieces=["I"], finish_reason="sensitive")),
    ("gemini", Reply(blocked_prompt=True)),
    ("gemini", Reply(pieces=["I"], finish_reason="SAFETY")),
])
async def test_refused_content_is_final_and_said_plainly(tmp_path, dialect, reply, build):
    other = backup_for(dialect)
    async with FakeLLMServer(dialect, [reply]) as server, FakeLLMServer(other) as backup:
        settings = provider_settings(tmp_path, dialect, server.base_url, llm_fallback=[other],
                                     **{f"{other}_base_url": backup.base_url, f"{other}_api_key": KEYS[other]})
        with pytest.raises(ContentRefused) as caught:
            await collect(build(settings))
    assert "refused" in caught.value.message
    assert len(server.requests) == 1 and not backup.requests  # no retry, no fallback


@pytest.mark.parametrize("dialect", DIALECTS)
async def test_api_keys_never_reach_errors_or_logs(tmp_path, dialect, caplog, build):
    """A hostile server echoes the key it was sent in its error; it must not surface anywhere."""
    key = KEYS[dialect]
    echo = {"error": {"code": 401 if dialect == "gemini" else "1002", "message": f"invalid key {key} (Bearer {key})",
                      "status": "UNAUTHENTICATED", "type": "invalid_request_error"}}
    caplog.set_level(logging.DEBUG)
    async with FakeLLMServer(dialect, [Reply(status=401, error=echo)]) as bad, \
            FakeLLMServer(dialect, [Reply(status=500, error=echo)]) as failing:
        for server in (bad, failing):
            model = build(provider_settings(tmp_path, dialect, server.base_url, llm_retries=1))
            with pytest.raises(ProviderError) as caught:
                await collect(model)
            error = caught.value
            shown = [error.message, str(error), repr(error), error.detail or "", "".join(traceback.format_exception(error))]
            linked, seen = [error.__cause__, error.__context__], []
            while linked:  # every exception chained to the one raised, however deep
                link = linked.pop()
                if link is not None and link not in seen:
                    seen.append(link)
                    shown += [str(link), repr(link)]
                    linked += [link.__cause__, link.__context__]
            assert all(key not in text for text in shown)
    assert server.requests, "the server was never asked"
    assert any("***" in r.getMessage() for r in caplog.records), "the failure should be logged, redacted"
    assert all(key not in r.getMessage() for r in caplog.records)


async def test_missing_key_is_an_auth_error_before_any_request(tmp_path, build):
    async with FakeLLMServer("zhipu") as server:
        settings = provider_settings(tmp_path, "zhipu", server.base_url, zhipu_api_key="")
        with pytest.raises(ProviderAuthError) as caught:
            await collect(build(settings))
    assert not server.requests and "No API key" in caught.value.message


async def test_glm_45_is_asked_not_to_think(tmp_path, build):
    async with FakeLLMServer("zhipu") as server:
        await collect(build(provider_settings(tmp_path, "zhipu", server.base_url, llm_model="glm-4.5")))
        await collect(build(provider_settings(tmp_path, "zhipu", server.base_url, llm_model="glm-4-plus")))
    assert server.requests[0].body["model"] == "glm-4.5" and server.requests[0].body["thinking"] == {"type": "disabled"}
    assert server.requests[1].body["model"] == "glm-4-plus" and not server.requests[1].body.get("thinking")


def test_unknown_provider_is_named_in_the_error(tmp_path):
    with pytest.raises(ValueError, match="'claude'"):
        build_chat_model(Settings(_env_file=None, data_dir=tmp_path, llm_provider="claude"))
