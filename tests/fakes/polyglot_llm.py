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
    "German": [
        "Morgens trinke ich meistens einen Kaffee und esse ein Brötchen.",
        "Die Bibliothek öffnet um neun Uhr und schließt um sechs.",
        "Heute Nachmittag wird es regnen, nimm einen Regenschirm mit.",
        "Meine Lieblingsjahreszeit ist der Herbst, wenn die Blätter rot werden.",
        "Mit dem Bus bist du in etwa zehn Minuten am Bahnhof.",
        "Ich finde, ein kurzer Spaziergang nach dem Abendessen tut gut.",
        "Wir können uns in dem kleinen Café neben dem Park treffen.",
        "Wenn ich vor dem Schlafen lese, schlafe ich besser.",
        "Das Museum zeigt eine neue Ausstellung über das Meer.",
        "Nudeln brauchen ungefähr zwölf Minuten in kochendem Wasser.",
        "Am Wochenende möchte ich in den Bergen wandern gehen.",
        "Mein Freund fängt nächsten Monat eine neue Arbeit in Hamburg an.",
        "Das Schwierigste an Chinesisch sind die Töne.",
        "Abends höre ich gern Musik und schaue Filme.",
        "Die Maultaschen in diesem Restaurant sind wirklich gut.",
        "Morgen ist Samstag, also müssen wir nicht arbeiten.",
        "Ich fahre jeden Tag mit dem Fahrrad zur Schule.",
        "Im Winter schneit es hier oft.",
        "Ruh dich einen Moment aus und fang dann noch einmal an.",
        "Danke für deine Frage, ich unterhalte mich gern mit dir.",
    ],
    "Italian": [
        "La mattina di solito prendo un caffè e un cornetto.",
        "La biblioteca apre alle nove e chiude alle sei.",
        "Oggi pomeriggio pioverà, quindi porta un ombrello.",
        "La mia stagione preferita è l'autunno, quando gli alberi diventano rossi.",
        "Con l'autobus arrivi alla stazione in circa dieci minuti.",
        "Penso che una breve passeggiata dopo cena faccia bene.",
        "Possiamo vederci nel piccolo bar vicino al parco.",
        "Leggere prima di dormire mi aiuta a riposare meglio.",
        "Il museo ha una nuova mostra sul mare.",
        "La pasta cuoce in circa dodici minuti nell'acqua bollente.",
        "Questo fine settimana vorrei fare una camminata in collina.",
        "Il mio amico comincia un nuovo lavoro a Milano il mese prossimo.",
        "La cosa più difficile del cinese sono i toni.",
        "La sera mi piace ascoltare musica e guardare film.",
        "I ravioli di questo ristorante sono davvero buoni.",
        "Domani è sabato, quindi non dobbiamo lavorare.",
        "Ogni giorno vado a scuola in bicicletta.",
        "Qui d'inverno nevica spesso.",
        "Puoi riposarti un momento e poi ricominciare.",
        "Grazie per la domanda, mi piace molto parlare con te.",
    ],
    "Portuguese": [
        "De manhã eu costumo tomar um café com pão e manteiga.",
        "A biblioteca abre às nove e fecha às seis.",
        "Vai chover hoje à tarde, então leve um guarda-chuva.",
        "A minha estação favorita é o outono, quando as árvores ficam vermelhas.",
        "De ônibus você chega à estação em uns dez minutos.",
        "Acho que uma caminhada curta depois do jantar faz bem.",
        "Podemos nos encontrar no pequeno café perto do parque.",
        "Ler antes de dormir me ajuda a descansar melhor.",
        "O museu tem uma nova exposição sobre o oceano.",
        "O macarrão cozinha em doze minutos na água fervendo.",
        "Neste fim de semana eu gostaria de fazer uma trilha nas montanhas.",
        "O meu amigo começa um trabalho novo em Lisboa no mês que vem.",
        "O mais difícil do chinês são os tons.",
        "À noite eu gosto de ouvir música e ver filmes.",
        "Os pastéis deste restaurante são muito gostosos.",
        "Amanhã é sábado, então não precisamos trabalhar.",
        "Eu vou de bicicleta para a escola todos os dias.",
        "Aqui neva muito no inverno.",
        "Você pode descansar um pouco e depois começar de novo.",
        "Obrigado pela pergunta, eu gosto muito de conversar com você.",
    ],
    "Russian": [
        "Утром я обычно пью кофе и ем бутерброд.",
        "Библиотека открывается в девять и закрывается в шесть.",
        "Сегодня днём будет дождь, возьми зонтик.",
        "Моё любимое время года осень, когда листья становятся красными.",
        "На автобусе до вокзала можно доехать минут за десять.",
        "Я думаю, что короткая прогулка после ужина полезна.",
        "Мы можем встретиться в маленьком кафе у парка.",
        "Чтение перед сном помогает мне лучше спать.",
        "В музее открылась новая выставка об океане.",
        "Макароны варятся в кипящей воде около двенадцати минут.",
        "В эти выходные я хотел бы погулять в горах.",
        "Мой друг в следующем месяце начинает новую работу в Москве.",
        "Самое трудное в китайском языке это тоны.",
        "Вечером я люблю слушать музыку и смотреть фильмы.",
        "Пельмени в этом ресторане очень вкусные.",
        "Завтра суббота, поэтому нам не нужно работать.",
        "Каждый день я езжу в школу на велосипеде.",
        "Зимой здесь часто идёт снег.",
        "Ты можешь немного отдохнуть, а потом начать снова.",
        "Спасибо за вопрос, мне очень нравится с тобой разговаривать.",
    ],
    "Japanese": [
        "朝はたいていコーヒーを飲んでパンを食べます。",
        "図書館は九時に開いて六時に閉まります。",
        "今日の午後は雨が降るので、傘を持っていってください。",
        "一番好きな季節は秋です。木の葉が赤くなるからです。",
        "バスで駅まで十分ぐらいで行けます。",
        "晩ご飯のあとに少し散歩するのは体にいいと思います。",
        "公園の近くの小さな喫茶店で会いましょう。",
        "寝る前に本を読むとよく眠れます。",
        "博物館で海についての新しい展示があります。",
        "パスタは沸騰したお湯で十二分ぐらいゆでます。",
        "今週末は山へハイキングに行きたいです。",
        "友達は来月から東京で新しい仕事を始めます。",
        "中国語で一番難しいのは声調です。",
        "夜は音楽を聞いたり映画を見たりするのが好きです。",
        "このレストランのぎょうざはとてもおいしいです。",
        "明日は土曜日なので、仕事はありません。",
        "毎日自転車で学校に行きます。",
        "ここは冬によく雪が降ります。",
        "少し休んでから、もう一度始めてください。",
        "質問してくれてありがとう。あなたと話すのは楽しいです。",
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
