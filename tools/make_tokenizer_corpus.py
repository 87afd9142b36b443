#!/usr/bin/env python3
"""Write tests/data/tokenizer_corpus.txt: the texts on which
python/tests/test_tokenizer.py compares maskattn.WordPieceTokenizer with
Hugging Face's BertTokenizer, id for id.

Regenerate (byte-identical: a fixed seed, the standard library only, no
dependence on the Python version's Unicode tables):

    python3 tools/make_tokenizer_corpus.py [tests/data/tokenizer_corpus.txt]

The file is UTF-8, one text per line, every line ended by "\\n". Read it with
    data.decode("utf-8").split("\\n")[:-1]
and never with str.splitlines() or a text-mode file: texts hold characters that
those treat as line ends (U+000B, U+000C, U+001C-U+001E, U+0085, U+2028,
U+2029). No text holds "\\n" or "\\r".

What the lines exercise (the sections below, in this order): English with
punctuation and numbers; accented Latin (French, German, Spanish, Vietnamese,
Polish, Turkish with İ and ı); Greek with final sigma; Cyrillic, Arabic,
Hebrew, Devanagari, Thai; Chinese, Japanese kana, Korean Hangul; emoji and
symbols; Unicode punctuation; combining marks; zero-width, format and
private-use characters; control characters; every kind of whitespace; the
special tokens' strings ([MASK], [cls], x[SEP]y); words longer than 100
characters and words near that limit; URLs, e-mail addresses and code;
mixed-script words; words that need several ## pieces; characters whose
category the tokenizer takes from old Unicode tables (assigned after Unicode
8.0, or recategorised since); random code points from blocks of Unicode 13 or
earlier (nothing from blocks added after Unicode 15, whose lowercase mappings
ICU 72 does not know).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SEED = 20261123
OUT = Path(__file__).resolve().parent.parent / "tests" / "data" / "tokenizer_corpus.txt"

# ---- word and phrase banks ----------------------------------------------------

ENGLISH_WORDS = """the a an of to in for on with at by from about into over after between
through during without before under around among attention mask masks model models layer
layers transformer encoder decoder token tokens sentence sentences embedding embeddings
vector vectors query queries key keys value values head heads batch padding padded sequence
sequences length lengths position positional causal look-ahead window softmax probability
probabilities weight weights bias gradient gradients training inference learning rate
optimizer loss accuracy benchmark throughput latency memory cache kernel kernels thread
threads core cores matrix matrices tensor tensors shape shapes broadcast broadcasting
network networks language translation summary question answer dataset datasets library
python compiler unbelievably extraordinarily incomprehensibilities antidisestablishmentarianism
internationalization uncharacteristically counterrevolutionaries electroencephalography
pneumonoultramicroscopicsilicovolcanoconiosis supercalifragilisticexpialidocious
hippopotomonstrosesquippedaliophobia floccinaucinihilipilification thyroparathyroidectomized
quick brown fox jumps lazy dog she sells seashells seashore weather today tomorrow
yesterday morning evening coffee tea bread cheese wine river mountain ocean forest city
village street house garden window door table chair book paper pencil computer keyboard
screen phone camera music song guitar piano violin painting museum history science
mathematics physics chemistry biology medicine doctor nurse teacher student engineer
artist writer reader walked running jumped swimming thinking believed understood
don't can't won't it's they're we've i'd you'll o'clock rock'n'roll state-of-the-art
well-known self-attention multi-head pre-norm post-norm""".split()

ENGLISH_SENTENCES = [
    "Hello, world!",
    "The quick brown fox jumps over the lazy dog.",
    "It costs $3.50 (about €3.20) per kg; 12% off until 2024-05-31.",
    "Call +1 (555) 123-4567 or e-mail info@example.com before 5:30 p.m.",
    "Version 2.0.1-beta was released on 03/04/2025 at 10:45:00 UTC.",
    "He said: \"Don't panic!\" — and left.",
    "Is 3 < 5 && 7 > 2? Yes; 2^10 = 1024, 10 % 3 == 1 and a|b ~ c.",
    "Temperatures ranged from -40°F to 120°F (-40°C to 49°C).",
    "Masks are where attention code goes wrong, silently.",
    "A fully padded row turns into NaN after softmax of all -inf.",
    "The model reached 93.7% accuracy after 1,000,000 steps.",
    "Use `triu(ones, 1) == 0` and the mask is inverted.",
    "Section 3.2.1 (\"Scaled Dot-Product Attention\") defines softmax(QK^T / sqrt(d_k))V.",
    "#hashtag @mention ~tilde ^caret _underscore_ {braces} [brackets] <angles>",
    "Wait... what?! No way!!! Really??",
    "1st 2nd 3rd 4th 21st 100th 1/2 3/4 0.5 .5 5. 1e-9 6.02e23 0x1F 0b1010",
    "I.B.M. U.S.A. e.g. i.e. etc. vs. Mr. Mrs. Dr. St. Jr.",
    "sentence-transformers/all-MiniLM-L6-v2 embeds sentences into 384 dimensions.",
]

FRENCH = [
    "Où est la bibliothèque ?", "C'est déjà l'été, n'est-ce pas ?", "Garçon, un café crème !",
    "L'œuvre de Molière est très appréciée.", "Noël à Besançon, à côté de l'hôpital.",
    "Ça coûte 12,50 € ; c'était prévu.", "Les élèves ont réussi l'examen de français.",
    "Être ou ne pas être, telle est la question.", "À bientôt, chère Hélène !",
    "Le cœur a ses raisons que la raison ne connaît point.",
]
GERMAN = [
    "Grüß Gott! Wie geht's?", "Die Straße ist schön und breit.",
    "Fußgängerübergänge sind nützlich.",
    "Ärzte, Öfen und Übungen.", "Donaudampfschifffahrtsgesellschaftskapitän",
    "Rindfleischetikettierungsüberwachungsaufgabenübertragungsgesetz",
    "Das Mädchen aß größere Äpfel.", "STRASSE und Straße, GROẞ und groß.",
    "Bitte schließen Sie die Tür.", "Übermorgen fährt der Zug nach München.",
]
SPANISH = [
    "¿Dónde está el baño?", "¡Qué día tan bonito!", "El niño comió piñata en el año nuevo.",
    "Mañana será otro día, señor.", "La canción de Ramón es fantástica.",
    "Él está aquí; ¿y tú?", "Pingüino, cigüeña y vergüenza.", "Acción, corazón, información.",
]
VIETNAMESE = [
    "Tiếng Việt rất phong phú.", "Xin chào, bạn có khỏe không?", "Cảm ơn bạn rất nhiều.",
    "Hà Nội là thủ đô của Việt Nam.", "Phở bò và bánh mì thật ngon.",
    "Người ta nói rằng học tiếng Việt khó.", "Đường phố đông đúc vào buổi sáng.",
]
POLISH = [
    "Zażółć gęślą jaźń.", "Łódź, Gdańsk i Kraków to piękne miasta.",
    "Chrząszcz brzmi w trzcinie w Szczebrzeszynie.", "Dziękuję bardzo, proszę pani.",
    "Źródło światła świeci jaśniej.", "Ósma rano, środa.",
]
TURKISH = [
    "İstanbul ve Ankara büyük şehirlerdir.", "Işık ılık, ığdır, İzmir, ısırgan.",
    "Çocuklar bahçede oynuyor.", "Günaydın! Nasılsınız?", "İİİ ııı IIİ iıİI",
    "Ağaç, dağ, değil, göğüs.", "Şoför ÇOK hızlı sürüyor.", "DİYARBAKIR ve ıSPARTA",
]
GREEK = [
    "Καλημέρα σας! Τι κάνετε;", "ΟΔΥΣΣΕΥΣ ΚΑΙ ΠΗΝΕΛΟΠΗ", "Ὀδυσσεύς", "ἀλφάβητος",
    "ΣΑΣ σας Σας ΣΊΣΥΦΟΣ σίσυφος", "Η γλώσσα μου έδωσαν ελληνική.", "λόγος, ΛΌΓΟΣ, Λόγος",
    "ΆΈΉΊΌΎΏ ΪΫ ϊϋ ΐΰ", "Ἀθῆναι, Ἑλλάς, ᾠδή", "ΟΣ ΑΣ ΕΣ Σ ς σ",
]
CYRILLIC = [
    "Привет, мир!", "Съешь же ещё этих мягких французских булок, да выпей чаю.",
    "Москва — столица России.", "Ёлка, ёж, ЁЖИК.", "Україна, Київ, їжак, ґанок.",
    "Беларусь і Мінск.", "Српски: Београд, Ђорђе, Љубав, Њега, Џеп.",
    "Қазақстан, Өзбекстон, Тоҷикистон.",
]
ARABIC = [
    "مرحبا بالعالم!", "اللغة العربية جميلة.", "السَّلَامُ عَلَيْكُمْ", "كيف حالك؟",
    "القرآن الكريم", "٠١٢٣٤٥٦٧٨٩ ، ؛ ؟", "فارسی: سلام، حال شما چطور است؟",
    "اردو: آپ کیسے ہیں؟", "ﷲ ﷺ ﻻ",
]
HEBREW = [
    "שלום עולם!", "עִבְרִית", "מה שלומך?", "ירושלים של זהב", "בְּרֵאשִׁית בָּרָא אֱלֹהִים",
    "תל־אביב–יפו", "״ציטוט״ ׳גרש׳",
]
DEVANAGARI = [
    "नमस्ते दुनिया!", "हिन्दी भाषा सुंदर है।", "क्षत्रिय ज्ञान श्री", "संस्कृतम् ॥ १२३ ॥",
    "मराठी: महाराष्ट्र", "नेपाली: काठमाडौं", "अ आ इ ई उ ऊ ऋ ए ऐ ओ औ अं अः",
]
THAI = [
    "สวัสดีครับ", "ภาษาไทยไม่มีช่องว่างระหว่างคำ", "กรุงเทพมหานคร", "ขอบคุณมาก ๆ",
    "๑๒๓๔๕ ฿100", "น้ำ ผู้ใหญ่ ไม้เอก ไม้โท",
]
CHINESE = [
    "你好，世界！", "我爱自然语言处理。", "北京是中国的首都。", "這是繁體中文。",
    "注意力机制（Attention）很重要。", "「引号」与『书名号』、顿号。", "一二三四五六七八九十",
    "𠀀𠀁𪜀𫝀𫠠𬺰 丽丸乁", "豈更車賈滑串句", "龍龜鬱齉",
]
JAPANESE = [
    "こんにちは、世界！", "カタカナとひらがな。", "東京都渋谷区", "ｶﾀｶﾅ ﾊﾝｶｸ",
    "ガギグゲゴ パピプペポ", "日本語の文章を分かち書きしない。", "ヴァイオリン ゔ",
    "ー〜・「」『』【】", "㍿ ㌔ ㍻",
]
KOREAN = [
    "안녕하세요, 세계!", "한국어 자연어 처리", "대한민국 서울특별시", "ㄱㄴㄷㄹ ㅏㅑㅓㅕ",
    "똠방각하 쀍 힣", "각 ᄒᆞᆫ", "한글은 세종대왕이 만들었다.",
]
EMOJI = [
    "I ❤️ NY", "👍🏽 good job 👏👏", "👨‍👩‍👧‍👦 family", "🏳️‍🌈 flag", "🇩🇪 🇫🇷 🇯🇵 🇺🇸",
    "☕ coffee ☀️ sun ☁ cloud", "😀😃😄😁😆😅🤣😂", "🥰🥳🥺🤯", "✌🏿 ✋ ✊", "1️⃣ 2️⃣ #️⃣ *️⃣",
    "🐍 Python 🦀 Rust", "♠♣♥♦ ♩♪♫♬", "→ ← ↑ ↓ ⇒ ⇔ ↔", "∑ ∏ ∫ √ ∞ ≈ ≠ ≤ ≥ ± × ÷",
    "€ £ ¥ ₹ ₽ ₩ ₿ ¢ $", "© ® ™ ℠ ℃ ℉ № ℗", "½ ¼ ¾ ⅓ ⅔ ⅛ ² ³ ¹ ⁰ ₀ ₁",
    "① ② ③ Ⅰ Ⅱ Ⅲ Ⅳ ⅰ ⅱ", "ℌ ℍ ℕ ℙ ℚ ℝ ℤ 𝔸 𝕏 𝐀 𝑨", "ﬁ ﬂ ﬀ ﬃ ﬄ ﬅ ﬆ", "Ǆ ǅ ǆ Ǉ ǈ ǉ",
]
UNICODE_PUNCT = [
    "«Bonjour», dit-il.", "“Quoted” and ‘single’ — dashes – here…", "¿Qué? ¡Sí!",
    "‹single› „low“ ‚low‘", "a‐b a‑b a‒b a–b a—b a―b", "‰ ‱ ′ ″ ‴ ※ ‼ ⁇ ⁈ ⁉",
    "、。〃〈〉《》「」『』【】〔〕〖〗〘〙〚〛〜〝〞〟", "§ ¶ † ‡ • ‣ ⁃ ‧ ·", "⸮ ⸘ ⁂ ⁑",
    "（全角）［括弧］｛波括弧｝！？：；，．", "﹐﹑﹒﹔﹕﹖﹗", "⟨angle⟩ ⟦white⟧ ⦃curly⦄",
    "'apostrophe' `backtick` ´acute´", "a⹃b ⹄ ⸿ ⹀ ⹁ ⹂",
]

# Stretches of Unicode 13-or-earlier blocks the random lines draw from
# (inclusive). Unassigned code points inside them stay in on purpose: the
# tokenizer keeps them (general category Cn is not "control").
RANDOM_RANGES = [
    (0x0020, 0x007E), (0x00A0, 0x024F), (0x0250, 0x02FF), (0x0300, 0x036F), (0x0370, 0x03FF),
    (0x0400, 0x052F), (0x0530, 0x058F), (0x0590, 0x05FF), (0x0600, 0x06FF), (0x0700, 0x074F),
    (0x0780, 0x07BF), (0x07C0, 0x07FF), (0x0800, 0x083F), (0x08A0, 0x08FF), (0x0900, 0x0DFF),
    (0x0E00, 0x0EFF), (0x0F00, 0x0FFF), (0x1000, 0x109F), (0x10A0, 0x10FF), (0x1100, 0x11FF),
    (0x1200, 0x139F), (0x13A0, 0x13FF), (0x1400, 0x167F), (0x1680, 0x169F), (0x16A0, 0x16FF),
    (0x1700, 0x177F), (0x1780, 0x18AF), (0x1900, 0x1AFF), (0x1B00, 0x1C7F), (0x1CD0, 0x1CFF),
    (0x1D00, 0x1DFF), (0x1E00, 0x1FFF), (0x2000, 0x206F), (0x2070, 0x20CF), (0x20D0, 0x20FF),
    (0x2100, 0x23FF), (0x2400, 0x27FF), (0x2800, 0x2BFF), (0x2C00, 0x2DFF), (0x2E00, 0x2E7F),
    (0x2E80, 0x2FDF), (0x3000, 0x303F), (0x3040, 0x31FF), (0x3200, 0x33FF), (0x3400, 0x4DBF),
    (0x4DC0, 0x4DFF), (0x4E00, 0x9FFF), (0xA000, 0xA4CF), (0xA4D0, 0xA6FF), (0xA700, 0xA7BF),
    (0xA800, 0xABFF), (0xAC00, 0xD7A3), (0xD7B0, 0xD7FF), (0xE000, 0xE0FF), (0xF900, 0xFAFF),
    (0xFB00, 0xFDFF), (0xFE00, 0xFE6F), (0xFE70, 0xFFFD), (0x10000, 0x1013F),
    (0x10300, 0x1034F), (0x10400, 0x104FF), (0x10800, 0x10FFF), (0x11000, 0x111FF),
    (0x11200, 0x116CF), (0x11700, 0x11AFF), (0x11C00, 0x11DAF), (0x12000, 0x1254F),
    (0x13000, 0x1342F), (0x16800, 0x16FFF), (0x17000, 0x187F7), (0x1B000, 0x1B16F),
    (0x1BC00, 0x1BC9F), (0x1D000, 0x1D24F), (0x1D400, 0x1D7FF), (0x1E800, 0x1E8DF),
    (0x1E900, 0x1E95F), (0x1EE00, 0x1EEFF), (0x1F000, 0x1F0FF), (0x1F100, 0x1F2FF),
    (0x1F300, 0x1F6FF), (0x1F700, 0x1F8FF), (0x1F900, 0x1FAFF), (0x20000, 0x2A6DF),
    (0x2A700, 0x2CEAF), (0x2CEB0, 0x2EBEF), (0x2F800, 0x2FA1F), (0x30000, 0x3134F),
    (0xE0000, 0xE007F), (0xE0100, 0xE01EF), (0xF0000, 0xF00FF),
]

# Characters the tokenizer judges by old Unicode tables (include/maskattn/
# text/wordpiece.hpp): assigned after Unicode 8.0 (so neither punctuation,
# control nor Mn there), after 9.0 (no decomposition, combining class 0), or
# recategorised since 8.0.
OLD_TABLE_CHARS = [
    0x2E43, 0x2E44, 0x2E4F, 0x2E52, 0x1AC0, 0x1ABF, 0x1ACE, 0x08E2, 0x0890, 0x0891, 0x08D3,
    0x13430, 0x13438, 0x110CD, 0x11938, 0x16FF0, 0x16FF1, 0x1D165, 0x07FD, 0x09FE, 0x0D3B,
    0x0EBA, 0x1715, 0x0C3C, 0x166D, 0x111C9, 0x1734, 0x1885, 0x1886, 0xA9BD, 0x1E94A, 0x1E95E,
    0x1144B, 0x11C41, 0x0F0C, 0x180E, 0x061C, 0x2066, 0x2069, 0x1BCA0, 0x1D173,
]

FORMAT_CHARS = [
    0x00AD, 0x200B, 0x200C, 0x200D, 0x200E, 0x200F, 0x202A, 0x202B, 0x202C, 0x202D, 0x202E,
    0x2060, 0x2061, 0x2062, 0x2063, 0x2064, 0xFEFF, 0x061C, 0x180E, 0x034F, 0xFE0F, 0xFE0E,
    0xE000, 0xE123, 0xF8FF, 0xF0000, 0x100000, 0xFFFD, 0xFFFC, 0xFFF9, 0xFFFA, 0xFFFB,
    0x0378, 0x0379, 0xFDD0, 0xFFFE, 0xFFFF, 0x1FFFE, 0x10FFFF, 0xE0001, 0xE0041,
]
CONTROL_CHARS = [c for c in range(0x00, 0x20) if c not in (0x0A, 0x0D)] + list(range(0x7F, 0xA0))
WHITESPACE_CHARS = [
    0x09, 0x0B, 0x0C, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2001, 0x2002,
    0x2003, 0x2004, 0x2005, 0x2006, 0x2007, 0x2008, 0x2009, 0x200A, 0x2028, 0x2029, 0x202F,
    0x205F, 0x3000, 0x180E, 0x200B,
]
COMBINING = [0x0300, 0x0301, 0x0302, 0x0303, 0x0308, 0x030A, 0x0323, 0x0327, 0x0328, 0x0331,
             0x0345, 0x0334, 0x0338, 0x0489, 0x20DD, 0x20E3, 0x0903, 0x093C, 0x0E31, 0x1DC0,
             0x1AB0, 0x302A, 0x3099, 0x309A, 0x05B4, 0x064B, 0x0670, 0x1D16D]

SPECIAL_TOKENS = ["[MASK]", "[CLS]", "[SEP]", "[PAD]", "[UNK]"]
SPECIAL_LINES = [
    "[MASK]", "[CLS] hello [SEP]", "x[MASK]y", "[mask] [Mask] [MASK ] [ MASK]",
    "[MASK][MASK][MASK]", "[[MASK]]", "[MAS[MASK]K]", "The capital of France is [MASK].",
    "[CLS][SEP][PAD][UNK][MASK]", "[UNK] is unknown; [unk] is not.", "[SEP]middle[SEP]",
    "paris[MASK]london", "[MASK]é[MASK]ß", "ＭＡＳＫ [ＭＡＳＫ]", "[CLS]\t[SEP]", "[MASK]" * 12,
]
URLS_AND_CODE = [
    "https://huggingface.co/sentence-transformers/all-MiniLM-L6-v2?tab=files#readme",
    "http://example.com:8080/path/to/page.html?q=attention%20mask&lang=en",
    "ftp://user:pass@ftp.example.org/pub/file.tar.gz", "mailto:someone@example.co.uk",
    "www.wikipedia.org/wiki/Transformer_(machine_learning_model)",
    "git clone git@github.com:owner/repo.git && cd repo && make -j2",
    "def forward(self, x: Tensor) -> Tensor: return x @ self.weight.T + self.bias",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name DESC;",
    "const mask = causal() & key_lengths({5, 3}); // look-ahead + padding",
    "{\"input_ids\": [101, 7592, 102], \"attention_mask\": [1, 1, 1]}",
    "<div class=\"container\"><p>Hello&nbsp;world</p></div>",
    "export PATH=$HOME/.local/bin:$PATH; echo \"${PATH}\" | tr ':' '\\n'",
    "C:\\Users\\Public\\Documents\\report_2024-final(1).docx",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # squares",
    "#include <vector>\nint main() { return 0; }".replace("\n", " "),
    "regex: ^[a-z0-9._%+-]+@[a-z0-9.-]+\\.[a-z]{2,}$",
    "user_name__v2 camelCaseIdentifier SCREAMING_SNAKE kebab-case-word",
]


def lang_lines(rng: random.Random) -> list[str]:
    """Sentences of each language, alone and joined with others and numbers."""
    banks = [FRENCH, GERMAN, SPANISH, VIETNAMESE, POLISH, TURKISH, GREEK, CYRILLIC, ARABIC,
             HEBREW, DEVANAGARI, THAI, CHINESE, JAPANESE, KOREAN, EMOJI, UNICODE_PUNCT]
    lines = [s for bank in banks for s in bank]
    for _ in range(1100):
        bank = rng.choice(banks)
        parts = [rng.choice(bank) for _ in range(rng.randint(1, 3))]
        if rng.random() < 0.3:
            parts.insert(rng.randrange(len(parts) + 1), rng.choice(ENGLISH_SENTENCES))
        if rng.random() < 0.2:
            parts.append(str(rng.randint(0, 10**rng.randint(1, 7))))
        line = " ".join(parts)
        r = rng.random()
        if r < 0.15:
            line = line.upper()
        elif r < 0.25:
            line = line.lower()
        lines.append(line)
    return lines


def english_lines(rng: random.Random) -> list[str]:
    lines = list(ENGLISH_SENTENCES)
    puncts = [".", ",", ";", ":", "!", "?", "...", " -", " (", ")", "\"", "'"]
    for _ in range(700):
        words = [rng.choice(ENGLISH_WORDS) for _ in range(rng.randint(3, 18))]
        out = []
        for w in words:
            r = rng.random()
            if r < 0.08:
                w = w.capitalize()
            elif r < 0.11:
                w = w.upper()
            elif r < 0.16:
                w = str(rng.choice([rng.randint(0, 99), rng.randint(100, 99999),
                                    round(rng.uniform(0, 1000), rng.randint(1, 3))]))
            if rng.random() < 0.12:
                w += rng.choice(puncts)
            out.append(w)
        line = " ".join(out)
        lines.append(line[0].upper() + line[1:] + rng.choice([".", "!", "?", "", "…"]))
    return lines


def char_lines(rng: random.Random, chars: list[int], n: int) -> list[str]:
    """Each character alone, inside a word and between words."""
    lines = []
    for c in chars:
        ch = chr(c)
        lines.append(f"a{ch}b")
        lines.append(f"word{ch} {ch}word {ch}")
    words = ENGLISH_WORDS + [w for s in FRENCH + GERMAN + GREEK for w in s.split()]
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(2, 8)):
            w = rng.choice(words)
            k = rng.randrange(len(w) + 1)
            parts.append(w[:k] + chr(rng.choice(chars)) + w[k:])
        lines.append(" ".join(parts))
    return lines


def combining_lines(rng: random.Random) -> list[str]:
    lines = ["cafe\u0301 nai\u0308ve A\u030angstro\u0308m", "e\u0301\u0301\u0301 o\u0323\u0302",
             "a\u0345b \u1f80 \u1fb7", "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o\u0358",
             "\u0301 leading mark", "q\u0307\u0323 q\u0323\u0307",
             "\uac00\u11a8 \u1100\u1161\u11a8"]
    base = "aeiouAEIOUnNcCsSzZyY"
    for _ in range(250):
        word = []
        for _ in range(rng.randint(2, 10)):
            word.append(rng.choice(base))
            for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
                word.append(chr(rng.choice(COMBINING)))
        lines.append("".join(word) + " " + "".join(rng.sample(base, 5)))
    return lines


def long_word_lines(rng: random.Random) -> list[str]:
    lines = ["a" * 99, "a" * 100, "a" * 101, "b" * 200, "é" * 100, "é" * 101,
             "e\u0301" * 60,  # 120 code points before NFD strip, 60 after
             "x" * 100 + "." + "y" * 100, "abc" * 40 + " short", "ab" * 50 + "\u0301" * 5,
             "日" * 150, "İ" * 60, "ß" * 101, "\U0001F600" * 101, "a" * 100 + "[MASK]" + "a" * 100]
    letters = "abcdefghijklmnopqrstuvwxyz"
    for _ in range(60):
        n = rng.choice([rng.randint(95, 105), rng.randint(101, 400)])
        word = "".join(rng.choice(letters) for _ in range(n))
        lines.append(f"{rng.choice(ENGLISH_WORDS)} {word} {rng.choice(ENGLISH_WORDS)}")
    # Long texts (several hundred pieces): nothing is truncated unless asked.
    for _ in range(20):
        lines.append(" ".join(rng.choice(ENGLISH_WORDS) for _ in range(rng.randint(150, 300))))
    return lines


def mixed_script_lines(rng: random.Random) -> list[str]:
    scripts = ["hello", "мир", "κόσμος", "世界", "שלום", "مرحبا", "नमस्ते", "สวัสดี", "세계",
               "こんにちは", "café", "straße", "İz", "123", "x86", "GPT4o"]
    lines = []
    for _ in range(150):
        lines.append(" ".join("".join(rng.sample(scripts, rng.randint(2, 3)))
                              for _ in range(rng.randint(1, 4))))
    return lines


def subword_lines(rng: random.Random) -> list[str]:
    stems = ["un", "re", "pre", "anti", "over", "under", "inter", "trans", "micro", "hyper",
             "ize", "ization", "able", "ibility", "ness", "less", "ment", "ful", "ingly", "ed",
             "token", "attend", "mask", "embed", "graph", "phone", "logy", "morph", "cardio"]
    lines = []
    for _ in range(150):
        lines.append(" ".join("".join(rng.choice(stems) for _ in range(rng.randint(2, 6)))
                              for _ in range(rng.randint(1, 6))))
    letters = "abcdefghijklmnopqrstuvwxyzäöüéèñçø"
    for _ in range(100):
        lines.append(" ".join("".join(rng.choice(letters) for _ in range(rng.randint(5, 30)))
                              for _ in range(rng.randint(1, 4))))
    return lines


def special_token_lines(rng: random.Random) -> list[str]:
    lines = list(SPECIAL_LINES)
    for _ in range(120):
        words = [rng.choice(ENGLISH_WORDS) for _ in range(rng.randint(2, 10))]
        for _ in range(rng.randint(1, 3)):
            tok = rng.choice(SPECIAL_TOKENS + ["[mask]", "[cls]", "MASK", "[MASK", "MASK]"])
            k = rng.randrange(len(words) + 1)
            if rng.random() < 0.5 and words:
                j = rng.randrange(len(words))
                w = words[j]
                p = rng.randrange(len(w) + 1)
                words[j] = w[:p] + tok + w[p:]  # no word boundary
            else:
                words.insert(k, tok)
        lines.append(" ".join(words))
    return lines


def whitespace_lines(rng: random.Random) -> list[str]:
    lines = ["", " ", "\t", "   leading", "trailing   ", "  both  ", "\u3000\u3000全角"]
    for _ in range(120):
        words = [rng.choice(ENGLISH_WORDS) for _ in range(rng.randint(2, 8))]
        line = words[0]
        for w in words[1:]:
            line += "".join(chr(rng.choice(WHITESPACE_CHARS)) for _ in range(rng.randint(1, 3)))
            line += w
        lines.append(line)
    return lines


def random_code_point(rng: random.Random) -> str:
    while True:
        lo, hi = rng.choice(RANDOM_RANGES)
        c = rng.randint(lo, hi)
        if c not in (0x0A, 0x0D) and not 0xD800 <= c <= 0xDFFF:
            return chr(c)


def random_lines(rng: random.Random) -> list[str]:
    lines = []
    for _ in range(700):
        out = []
        for _ in range(rng.randint(5, 40)):
            r = rng.random()
            if r < 0.12:
                out.append(" ")
            elif r < 0.25:
                out.append(rng.choice("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.,!?-"))
            else:
                out.append(random_code_point(rng))
        lines.append("".join(out))
    return lines


def corpus() -> list[str]:
    rng = random.Random(SEED)
    lines: list[str] = []
    lines += english_lines(rng)
    lines += lang_lines(rng)
    lines += combining_lines(rng)
    lines += char_lines(rng, FORMAT_CHARS, 150)
    lines += char_lines(rng, CONTROL_CHARS, 100)
    lines += whitespace_lines(rng)
    lines += special_token_lines(rng)
    lines += long_word_lines(rng)
    lines += list(URLS_AND_CODE)
    lines += mixed_script_lines(rng)
    lines += subword_lines(rng)
    lines += char_lines(rng, OLD_TABLE_CHARS, 150)
    lines += random_lines(rng)
    for line in lines:
        assert "\n" not in line and "\r" not in line, repr(line)
    return lines


def main() -> None:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else OUT
    lines = corpus()
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    out.write_bytes(data)
    print(f"{out}: {len(lines)} lines, {len(data)} bytes")


if __name__ == "__main__":
    main()
