"""An OpenAI-compatible loopback model that answers in the language its system prompt asks for.

It stands in for a model that writes every language (a hosted one) in language tests and bench/language.py.
The pipeline asks with a last line "Always answer in French (français)."; the server reads it, records the
language asked for, and streams the next of its answers in that language (or an English one saying what it
could not find, which a test then sees).
"""
from __future__ import annotations

import re
from collections import defaultdict

from aiohttp import web

from tests.fakes.llm_servers import FakeLLMServer, Reply

ASKED = re.compile(r"Always answer in ([A-Z][A-Za-z ]+?)(?: \(|\.)")

ANSWERS: dict[str, list[str]] = {
    "English": [
        "I usually have coffee and toast in the morning.",
        "The library opens at nine and closes at six.",
        "It is going to rain this afternoon, so take an umbrella.",
        "My favourite season is autumn because the trees turn red and gold.",
        "You can reach the station by bus in about ten minutes.",
        "I think a short walk after dinner is good for you.",
        "We could meet at the small cafe near the park.",
        "Reading before bed helps me sleep better.",
        "The museum has a new exhibition about the ocean.",
        "Cooking pasta takes about twelve minutes in boiling water.",
        "This weekend I would like to go hiking in the hills.",
        "My friend starts a new job in Boston next month.",
        "The hardest part of learning Chinese is the tones.",
        "In the evening I like to listen to music and watch films.",
        "The dumplings at this restaurant are really good.",
        "Tomorrow is Saturday, so we do not have to work.",
        "I ride my bicycle to school every day.",
        "It often snows here in the winter.",
        "You can rest for a moment and then start again.",
        "Thank you for your question, I enjoy talking with you.",
    ],
    "French": [
        "Je prends souvent un café avec une tartine le matin.",
        "La bibliothèque ouvre à neuf heures et ferme à six heures.",
        "Il va pleuvoir cet après-midi, prends un parapluie.",
        "Ma saison préférée est l'automne, quand les arbres deviennent rouges.",
        "Tu peux aller à la gare en bus en dix minutes environ.",
        "Je pense qu'une petite promenade après le dîner fait du bien.",
        "Nous pourrions nous retrouver au petit café près du parc.",
        "Lire avant de dormir m'aide à mieux dormir.",
        "Le musée présente une nouvelle exposition sur l'océan.",
        "Les pâtes cuisent en douze minutes dans l'eau bouillante.",
        "Ce week-end, j'aimerais faire une randonnée dans les collines.",
        "Mon ami commence un nouveau travail à Lyon le mois prochain.",
        "Le plus difficile en chinois, ce sont les tons.",
        "Le soir, j'aime écouter de la musique et regarder des films.",
        "Les raviolis de ce restaurant sont vraiment bons.",
        "Demain c'est samedi, nous ne travaillons pas.",
        "Je vais à l'école à vélo tous les jours.",
        "Il neige souvent ici en hiver.",
        "Tu peux te reposer un moment, puis recommencer.",
        "Merci pour ta question, j'aime beaucoup parler avec toi.",
    ],
    "Spanish": [
        "Por la mañana suelo tomar un café con pan tostado.",
        "La biblioteca abre a las nueve y cierra a las seis.",
        "Va a llover esta tarde, así que lleva un paraguas.",
        "Mi estación favorita es el otoño, cuando los árboles se ponen rojos.",
        "Puedes llegar a la estación en autobús en unos diez minutos.",
        "Creo que un paseo corto después de cenar es bueno para la salud.",
        "Podemos vernos en la pequeña cafetería cerca del parque.",
        "Leer antes de dormir me ayuda a descansar mejor.",
        "El museo tiene una nueva exposición sobre el océano.",
        "La pasta se cocina en doce minutos en agua hirviendo.",
        "Este fin de semana me gustaría caminar por las montañas.",
        "Mi amigo empieza un trabajo nuevo en Madrid el mes que viene.",
        "Lo más difícil del chino son los tonos.",
        "Por la noche me gusta escuchar música y ver películas.",
        "Las empanadas de este restaurante son muy ricas.",
        "Mañana es sábado, así que no tenemos que trabajar.",
        "Voy a la escuela en bicicleta todos los días.",
        "Aquí nieva a menudo en invierno.",
        "Puedes descansar un momento y luego empezar otra vez.",
        "Gracias por tu pregunta, me gusta mucho hablar contigo.",
    ],
    "Chinese": [
        "我早上一般喝咖啡，吃面包。",
        "图书馆早上九点开门，晚上六点关门。",
        "今天下午会下雨，记得带伞。",
        "我最喜欢秋天，因为树叶会变成红色。",
        "坐公共汽车去火车站大概要十分钟。",
        "我觉得吃完晚饭散散步对身体很好。",
        "我们可以在公园旁边的小咖啡馆见面。",
        "睡觉前看书能让我睡得更好。",
        "博物馆有一个关于大海的新展览。",
        "面条在开水里煮十分钟就好了。",
        "这个周末我想去山上走一走。",
        "我的朋友下个月要去北京工作。",
        "学习中文最难的是声调。",
        "晚上我喜欢听音乐，看电影。",
        "这家饭店的饺子非常好吃。",
        "明天是星期六，我们不用上班。",
        "我每天骑自行车去学校。",
        "冬天的时候，这里常常下雪。",
        "你可以先休息一下，然后再开始。",
        "谢谢你的问题，我很高兴和你聊天。",
    ],
}


class PolyglotServer(FakeLLMServer):
    """`async with PolyglotServer() as s:` — point the openai provider at `s.base_url`; `s.asked` lists the
    language named in each request's system prompt (None where there was no such line)."""

    def __init__(self, piece_words: int = 3) -> None:
        super().__init__("openai")
        self.asked: list[str | None] = []
        self.piece_words = piece_words
        self._next: dict[str, int] = defaultdict(int)

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        if request.method == "POST" and request.path.endswith("/chat/completions"):
            body = await request.json()  # aiohttp keeps the body, so the base class reads it again
            system = " ".join(m.get("content", "") for m in body.get("messages", []) if m.get("role") == "system")
            found = ASKED.search(system)
            language = found.group(1) if found else None
            self.asked.append(language)
            answers = ANSWERS.get(language or "", [f"Sorry, I was not told a language I know ({language})."])
            text = answers[self._next[language or ""] % len(answers)]
            self._next[language or ""] += 1
            self.script(Reply(pieces=_pieces(text, self.piece_words)))
        return await super()._handle(request)


def _pieces(text: str, words: int) -> list[str]:
    """Streamed a few words (or, for Chinese, a few characters) at a time, as a tokenizer would."""
    if " " not in text:
        return [text[i:i + words] for i in range(0, len(text), words)]
    parts = re.findall(r"\S+\s*", text)
    return ["".join(parts[i:i + words]) for i in range(0, len(parts), words)]
