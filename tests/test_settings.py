"""Configuration: every setting is documented in .env.example, and every external URL can be pointed elsewhere."""
from adapters.settings import Settings
from tests.conftest import ROOT


def test_env_example_documents_every_setting():
    text = (ROOT / ".env.example").read_text(encoding="utf-8")
    missing = [name for name in Settings.model_fields if f"DOPPEL_{name.upper()}=" not in text]
    assert missing == []


def test_external_urls_and_lists_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("DOPPEL_TELEGRAM_API_URL", "http://127.0.0.1:9000")
    monkeypatch.setenv("DOPPEL_DISCORD_API_URL", "http://127.0.0.1:9001/api/v10")
    monkeypatch.setenv("DOPPEL_OPENAI_BASE_URL", "http://127.0.0.1:9002/v1")
    monkeypatch.setenv("DOPPEL_ADMIN_IDS", "1, 2;3")
    monkeypatch.setenv("DOPPEL_LLM_FALLBACK", "zhipu, local")
    s = Settings(_env_file=None)
    assert s.telegram_api_url == "http://127.0.0.1:9000"
    assert s.discord_api_url.startswith("http://127.0.0.1:9001")
    assert s.openai_base_url == "http://127.0.0.1:9002/v1"
    assert s.admin_ids == [1, 2, 3]
    assert s.llm_fallback == ["zhipu", "local"]
