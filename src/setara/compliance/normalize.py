"""Name normalisation: scripts to Latin, case, diacritics, punctuation, honorifics, legal forms.

Both the list side and the query side go through the same functions, so whatever is lost here is lost
symmetrically. A name becomes one or more token tuples (several when a script has more than one
plausible reading, e.g. Han characters read as Mandarin or as Sino-Korean).
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Final

import icu
from rapidfuzz.distance import OSA

from setara.compliance._hanja import HANJA_KOREAN

NAME_CHARS_MAX: Final = 300
TOKENS_MAX: Final = 12
# Legal forms are kept as a marked token so OOO and LLC compare equal but carry little weight.
FORM_PREFIX: Final = "~"

# Multi-token forms are matched longest first on the normalised token stream.
_COMPANY_FORMS: Final[dict[str, tuple[str, ...]]] = {
    "llc": (
        "llc",
        "ooo",
        "l l c",
        "limited liability company",
        "obshchestvo s ogranichennoy otvetstvennostyu",
        "obshchestvo s ogranichennoi otvetstvennostiu",
        "tov",
        "mchj",
        "sp z o o",
        "spzoo",
    ),
    "jsc": (
        "jsc",
        "ao",
        "oao",
        "zao",
        "pao",
        "ojsc",
        "cjsc",
        "pjsc",
        "jstock",
        "joint stock company",
        "open joint stock company",
        "closed joint stock company",
        "public joint stock company",
        "aktsionernoe obshchestvo",
        "aktsionernoye obshchestvo",
        "pat",
        "prat",
    ),
    "ltd": ("ltd", "limited", "pte", "pte ltd", "pty ltd", "pvt ltd", "private limited", "co ltd", "company limited"),
    "sdnbhd": ("sdn bhd", "sdn berhad", "sendirian berhad", "bhd", "berhad", "sdn"),
    "pt": ("pt", "perseroan terbatas", "tbk", "pt tbk"),
    "gmbh": ("gmbh", "gesellschaft mit beschrankter haftung", "mbh"),
    "ag": ("ag", "aktiengesellschaft"),
    # Russian and Japanese spell the English forms by sound: Компани/Компания (kompani, kompaniya),
    # カンパニー (kanpani, one typo away), Корп (korp), Корпорация (korporatsiya).
    "inc": ("inc", "incorporated", "corp", "corporation", "korp", "korporatsiya", "korporatsiia"),
    "co": ("co", "company", "cia", "compania", "companhia", "kompani", "kompaniya", "kompaniia"),
    "plc": ("plc", "public limited company"),
    "sa": ("sa", "s a", "sociedad anonima", "societe anonyme", "sas", "s a s", "sarl", "s a r l"),
    "srl": ("srl", "s r l", "spa", "s p a"),
    "bv": ("bv", "b v", "nv", "n v"),
    "llp": ("llp", "lp", "l p"),
    "kg": ("kg", "gmbh co kg"),
    "fze": ("fze", "fzco", "fzc", "fzllc", "fz llc", "dmcc"),
}
_FORM_LOOKUP: Final[dict[tuple[str, ...], str]] = {
    tuple(variant.split()): canon for canon, variants in _COMPANY_FORMS.items() for variant in variants
}
_FORM_LEN_MAX: Final = max(len(key) for key in _FORM_LOOKUP)
_FORM_FIRST_WORDS: Final = frozenset(key[0] for key in _FORM_LOOKUP)
_FORM_LAST_WORDS: Final = frozenset(key[-1] for key in _FORM_LOOKUP)
# Short forms that are also name syllables ("Ao" in pinyin, "Sa", "At"): recognised only at the ends.
_EDGE_ONLY_FORMS: Final = frozenset("ao sa ag kg lp bv nv pt pat tov sas spa sdn korp".split())
# ... and of those, the ones never written before the name ("Sa Ding" is a person).
_TRAILING_ONLY_FORMS: Final = frozenset("sa ag kg lp bv nv sas spa sdn korp".split())
# Long form words are recognised with one typo ("COMPAqY", "LIMITDE"): candidates from a deletion
# neighbourhood, confirmed by a true edit distance of 1 (a shared deletion alone allows two edits,
# which made the Persian name Behzad look like Berhad). Words under seven letters are too close to
# names ("Berhad"/"Behzad") to be guessed at.
_FUZZY_FORM_LEN_MIN: Final = 7
_FUZZY_FORMS: Final[dict[str, list[tuple[str, str]]]] = {}
for _words, _canon in _FORM_LOOKUP.items():
    if len(_words) == 1 and len(_words[0]) >= _FUZZY_FORM_LEN_MIN:
        _word = _words[0]
        for _key in {_word, *(_word[:_i] + _word[_i + 1 :] for _i in range(len(_word)))}:
            _FUZZY_FORMS.setdefault(_key, []).append((_word, _canon))


@lru_cache(maxsize=65536)
def _fuzzy_form(token: str) -> str | None:
    if len(token) < _FUZZY_FORM_LEN_MIN - 1 or token.isdigit():
        return None
    for probe in (token, *(token[:i] + token[i + 1 :] for i in range(len(token)))):
        for word, canon in _FUZZY_FORMS.get(probe, ()):
            if OSA.distance(token, word, score_cutoff=1) <= 1:
                return canon
    return None


# Abbreviated honorifics and ranks say nothing about identity and are dropped (unless they are the
# whole name); spelt-out words (General, Major, Lord) are kept, as they also occur in names.
# Religious and customary titles (Mullah, Sheikh, Haji, Sayyid) are often written as part of a
# listed name, so they stay as low-weight particles instead.
HONORIFICS: Final = frozenset("mr mrs ms miss mx dr prof gen col maj capt lt brig adm sgt mme hon jr sr".split())
# Particles recur across unrelated names, so they count for little (see matcher weights).
PARTICLES: Final = frozenset(
    "al el ul ad ar as at az ash abu abo ab bin ben bint ibn ould uld abd abdel abdul abdal "
    "de da do dos das di del della der den van von le la los las y e of the and und et "
    "sheikh shaikh shaykh sheik haji hajji hadji alhaji mullah mulla maulvi mawlawi maulana mawlana "
    "sayyid sayed syed sahib qari hafiz imam".split()
)

_HANGUL_BASE: Final = 0xAC00
_HANGUL_END: Final = 0xD7A3
# A McCune-Reischauer-like romanisation without diacritics, the style of UN/OFAC DPRK entries
# ("Kim Jong Un", "Choe Ryong Hae").
_HANGUL_INITIALS: Final = tuple("k kk n t tt r m p pp s ss - j jj ch k t p h".replace("-", "").split(" "))
_HANGUL_VOWELS: Final = tuple("a ae ya yae o e yo ye o wa wae oe yo u wo we wi yu u ui i".split())
_HANGUL_FINALS: Final = tuple("- k k k n n n t l k m l l l p l m p p t t ng t t k t p t".replace("-", "").split(" "))

_ICU_LOCK: Final = threading.Lock()
_ICU_CACHE: Final[dict[str, object]] = {}
_ICU_GENERAL: Final = "Russian-Latin/BGN; Any-Latin; Latin-ASCII"
_ICU_HAN: Final = "Han-Latin/Names; Latin-ASCII"
_ICU_LATIN: Final = "Latin-ASCII"

_APOSTROPHES: Final = re.compile(r"[\u0027\u2018\u2019\u02bc\u02bb\u02bf\u02be\u0060\u00b4]")
_NON_ALNUM: Final = re.compile(r"[^a-z0-9~]+")
_DOTTED: Final = re.compile(r"(?<![a-z0-9])(?:[a-z]\.){2,}")
_AYN_INITIAL: Final = re.compile(r"(?<![A-Za-z])\u02bf")
_ALLAH: Final = re.compile(r"allh(?![a-z])")
_ARABIC_BIN: Final = re.compile(r"(?<![A-Za-z])bn(?![A-Za-z])")
_ARABIC_IBN: Final = re.compile(r"(?<![A-Za-z])abn(?![A-Za-z])")
# Arabic script writes "Abd al-" (servant of the) as two words; Latin lists write Abdul, Abdel, Abdal.
_ARABIC_ABD_AL: Final = re.compile(r"(?<![A-Za-z])abd al(?![A-Za-z])")

_URDU_PASHTO: Final = str.maketrans(
    {
        "\u06c1": "\u0647",  # ہ heh goal: h
        "\u06be": "\u0647",  # ھ do-chashmi heh, the aspiration of bh, dh, kh: h
        "\u06c0": "\u0647",
        "\u06c3": "\u0627",  # ۃ and ة, ta marbuta, end names in -a (أسامة = Usama)
        "\u0629": "\u0627",
        "\u06d2": "\u064a",  # ے bari ye: y / e
        "\u06cd": "\u064a",  # ۍ, ې: Pashto y
        "\u06d0": "\u064a",
        "\u0688": "\u062f",  # ڈ retroflex d
        "\u0679": "\u062a",  # ٹ retroflex t
        "\u0691": "\u0631",  # ڑ, ړ retroflex r
        "\u0693": "\u0631",
        "\u06ba": "\u0646",  # ں, ڼ: n
        "\u06bc": "\u0646",
        "\u0681": "\u0632",  # ځ dz: z
        "\u0685": "\u0633",  # څ ts: s
        "\u0696": "\u0698",  # ږ: zh
        "\u069a": "\u0634",  # ښ: sh (kh in the north)
        "\u06ab": "\u06af",  # ګ: g
        "\u06a8": "\u06af",  # ڨ: the g of Maghrebi names
    }
)
# ه ending a word of four letters or more after a consonant: not after a vowel letter (ا و ي ی),
# ل (Allah) or another ه.
_FINAL_HEH: Final = re.compile(
    "(?<=[\u0600-\u06ff]{2}[^\u0627\u0648\u064a\u06cc\u0644\u0647\u0629 ])\u0647(?![\u0600-\u06ff])"
)
_BEFORE_HEH: Final = re.compile("([\u062a\u0637\u0643\u0633\u0635\u062f\u0636\u0632\u0638\u06af\u067e])(?=\u0647)")
_ARABIC_ARTICLE: Final = re.compile(r"(?<![\u0600-\u06ff])\u0627\u0644(?=[\u0600-\u06ff]{2,})")


def _transliterator(spec: str) -> icu.Transliterator:
    # Building an ICU transliterator costs tens of ms; build each compound once per process.
    with _ICU_LOCK:
        cached = _ICU_CACHE.get(spec)
        if cached is None:
            cached = icu.Transliterator.createInstance(spec)
            _ICU_CACHE[spec] = cached
        return cached


def _is_hangul(ch: str) -> bool:
    return _HANGUL_BASE <= ord(ch) <= _HANGUL_END


def _is_han(ch: str) -> bool:
    code = ord(ch)
    return 0x4E00 <= code <= 0x9FFF or 0x3400 <= code <= 0x4DBF or 0xF900 <= code <= 0xFAFF


def romanize_hangul(text: str) -> str:
    """Romanise Hangul syllable by syllable, one token a syllable ("김정은" -> "kim jong un")."""
    out: list[str] = []
    for ch in text:
        if _is_hangul(ch):
            index = ord(ch) - _HANGUL_BASE
            initial, rest = divmod(index, 588)
            vowel, final = divmod(rest, 28)
            out.append(" " + _HANGUL_INITIALS[initial] + _HANGUL_VOWELS[vowel] + _HANGUL_FINALS[final] + " ")
        else:
            out.append(ch)
    return "".join(out)


# Russian spells Korean names by its own system (Ким Чен Ын = Kim Jong Un, Ли Сын Ман = Rhee Syng-man);
# the generic Cyrillic transliteration gives "Kim Chen Yn", far from the list's spelling. When a
# Cyrillic name carries a Korean surname, a second reading maps the letters the Korean way.
_KOREAN_SURNAMES_CYRILLIC: Final = frozenset(
    "ким пак ли ри чхве чой цой чон чен кан хан юн чан сон ким ко мун ян пэ пек хо шин син ю лим рим "
    "ким о чо тхэ хён ём со квон хван ан хон".split()
)
_KOREAN_CYRILLIC: Final = str.maketrans(
    {
        "а": "a",
        "б": "b",
        "в": "v",
        "г": "g",
        "д": "d",
        "е": "o",
        "ё": "yo",
        "ж": "j",
        "з": "z",
        "и": "i",
        "й": "i",
        "к": "k",
        "л": "l",
        "м": "m",
        "н": "n",
        "о": "o",
        "п": "p",
        "р": "r",
        "с": "s",
        "т": "t",
        "у": "u",
        "ф": "p",
        "х": "h",
        "ц": "ch",
        "ч": "j",
        "ш": "sh",
        "щ": "sh",
        "ъ": "",
        "ы": "u",
        "ь": "",
        "э": "ae",
        "ю": "yu",
        "я": "ya",
    }
)


def _looks_korean_cyrillic(text: str) -> bool:
    words = text.lower().replace("-", " ").split()
    return (
        1 < len(words) <= 4
        and all(len(w) <= 4 and all("\u0430" <= ch <= "\u044f" or ch == "\u0451" for ch in w) for w in words)
        and (words[0] in _KOREAN_SURNAMES_CYRILLIC or words[-1] in _KOREAN_SURNAMES_CYRILLIC)
    )


def _korean_cyrillic(text: str) -> str:
    # "нг" at a syllable end is the Korean final ng; "ен"/"ён" after a consonant is usually 어 -> "ong".
    lowered = text.lower().replace("чх", "ch").replace("кх", "k").replace("тх", "t").replace("пх", "p")
    lowered = re.sub(r"([бвгджзклмнпрстфхцчшщ])е(н)\b", r"\1о\2г", lowered)
    lowered = re.sub(r"р\b", "л", lowered)  # a final р is the Korean final ㄹ, romanised l (Ир = Il)
    return lowered.translate(_KOREAN_CYRILLIC)


# The u of du and tu is the name's own: Katakana writes them ドゥ/トゥ (ICU デゥ/テゥ), a d or t with no
# vowel ド/ト (ICU デ/テ). So u is dropped only after the other consonants.
_KATAKANA_INNER_VOWEL: Final = re.compile(r"([bfghkmprsz])u(?=[bcdfghjkmnprstvz])")
_KATAKANA_FINAL_VOWEL: Final = re.compile(r"([bfgkmprsz])u\b|([dt])[eo]\b")
# A long a (ー) ending a word stands for the -ah of Arabic names (アッラー = Allah, アブドゥッラー = Abdullah).
_KATAKANA_FINAL_LONG_A: Final = re.compile(r"(?<=[アァカガサザタダナハバパマヤャラワ])ー(?![\u30a0-\u30ff])")
# ン before b, m, p is m, as Hepburn writes it (コンパニー = kompani).
_KATAKANA_N_LABIAL: Final = re.compile(r"n(?=[bmp])")
# アル standing alone is the Arabic article al.
_KATAKANA_ARTICLE: Final = re.compile(r"(?<![a-z])ar(?![a-z])")


# A small vowel changes the vowel of the kana before it; ICU writes the pairs it has no syllable for
# with a tilde (ドゥ = "do~u", ウィ = "u~i", ヴァ = "vu~a", イェ = "i~e"): du, wi, va, ye.
_KATAKANA_SMALL_VOWEL: Final = (
    (re.compile(r"o~u"), "u"),
    (re.compile(r"i~e"), "ye"),
    (re.compile(r"(?<=[kg])u~"), "w"),
    (re.compile(r"(?<=[bcdfhjlmnpqrstvxz])u~"), ""),
    (re.compile(r"u~"), "w"),
    (re.compile(r"~"), ""),
)


def _katakana_latin(text: str) -> str:
    latin = _ascii_fold(text).lower()
    if "~" in latin:
        for pattern, repl in _KATAKANA_SMALL_VOWEL:
            latin = pattern.sub(repl, latin)
    return latin


def _katakana_readings(text: str) -> list[str]:
    """Katakana writes a foreign name syllable by syllable: a consonant with no vowel gets one (Iqbal
    is イクバル, ikubaru) and l is written as r. ICU's letters (small vowels joined to their kana) first,
    then those vowels stripped, then r read as l."""
    folded = _katakana_latin(text)
    marked = _katakana_latin(_KATAKANA_FINAL_LONG_A.sub("h", text)) if "ー" in text else folded
    bare = _KATAKANA_FINAL_VOWEL.sub(lambda m: m.group(1) or m.group(2), _KATAKANA_INNER_VOWEL.sub(r"\1", marked))
    bare = _KATAKANA_ARTICLE.sub("al", _KATAKANA_N_LABIAL.sub("m", bare))
    return list(dict.fromkeys((folded, bare, bare.replace("r", "l"))))


# Greek spellings of foreign names (see _greek_readings): a rough breathing on a final vowel after a
# consonant other than σ/κ is the h after it; ι before a vowel at a word's start, or before ι, is j;
# β and the υ of αυ/ευ are v in the modern reading.
_GREEK_FINAL_H: Final = re.compile(r"(?<=[βγδζθλμνξπρτφχψ])([αεηιουω])\u0314(?![\u0300-\u036f]*\w)")
_GREEK_J: Final = re.compile(r"(?<!\w)ι(?=[\u0300-\u036f]*[αεηοουω])|ι(?=[\u0300-\u036f]*ι)")
_GREEK_V: Final = re.compile(r"β|(?<=[αε])υ")
_GREEK_CONSONANT_H: Final = re.compile(r"([βγδζθκλμνξπρσςτφχψ])\u0314")
# υ before a vowel is y when it starts a word or follows a vowel (not ο, ου is u) or an h.
_GREEK_Y: Final = re.compile(r"(?<![βγδζθκλμνξπρσςτφχψοfj])υ(?=[\u0300-\u036f]*[αεηιοω])")


def _greek_latin(greek: str) -> str:
    """υ as y before a vowel at a word's start or after a vowel or h (ὐαὑα = Yahya, ὑογγ = Hyong),
    elsewhere as u (ῤυμυρι = Rumuri, φυαδ = Fuad)."""
    spelt = _GREEK_Y.sub("y", greek).replace("υ", "u")
    return _ascii_fold(unicodedata.normalize("NFC", spelt)).lower()


def _greek_readings(text: str) -> list[str]:
    """Greek writes a foreign name's h as a rough breathing on the vowel it comes with (ἁ = ha; on a
    final vowel after a consonant other than σ or κ, whose sh and kh it also marks, the h that ends
    the name: Ἀβδαλλἁ = Abdallah; on a consonant, the h after it: σ̔ = sh), its u and y as υ, its f
    as φ and its j as ι (before another vowel at the start of a word, or before another ι: ἰονες =
    Jones, ἁιιι = Hajji). One reading with those; when a β or αυ/ευ is in the name, a second with β
    as v and αυ/ευ as av/ev (Βικτορ = Viktor)."""
    decomposed = unicodedata.normalize("NFD", text.lower())
    plain = _GREEK_CONSONANT_H.sub(r"\1h", _GREEK_FINAL_H.sub(r"\1h", decomposed))
    plain = re.sub(r"(.)\u0314", r"h\1", plain).replace("\u0313", "")
    plain = _GREEK_J.sub("j", plain).replace("φ", "f")
    out = [_greek_latin(plain)]
    if "β" in plain or "αυ" in plain or "ευ" in plain:
        out.append(_greek_latin(_GREEK_V.sub("v", plain)))
    return out


_ICU_TO_LATIN: Final = "Russian-Latin/BGN; Any-Latin"  # _ICU_GENERAL without its last step, Latin-ASCII


def _devanagari_readings(text: str) -> list[str]:
    """ICU's letters, and when the name has श or ष (ICU ś and ṣ, folded to s), a reading with them as
    sh (शाह = Shah). Both from one transliteration."""
    latin = str(_transliterator(_ICU_TO_LATIN).transliterate(text))
    fold = _transliterator(_ICU_LATIN)
    plain = str(fold.transliterate(latin))
    if "\u015b" not in latin and "\u1e63" not in latin:
        return [plain]
    return [plain, str(fold.transliterate(latin.replace("\u015b", "sh").replace("\u1e63", "sh")))]


def _hanja_to_hangul(text: str) -> str | None:
    """Sino-Korean reading of Han characters, or None when a character has no known reading."""
    out: list[str] = []
    for ch in text:
        if _is_han(ch):
            reading = HANJA_KOREAN.get(ch)
            if reading is None:
                return None
            out.append(reading)
        else:
            out.append(ch)
    return "".join(out)


def _ascii_fold(text: str) -> str:
    if text.isascii():
        return text
    if all(ord(ch) < 0x250 or unicodedata.category(ch).startswith("M") for ch in text):
        return str(_transliterator(_ICU_LATIN).transliterate(text))
    arabic = any("\u0600" <= ch <= "\u06ff" for ch in text)
    if arabic and "\u0627\u0644" in text:
        # Arabic writes the article joined to the word; split it so "التكريتي" aligns with "al tikriti"
        # (but not inside "الله", the Allah of Abdullah and Nasrallah).
        text = _ARABIC_ARTICLE.sub("\u0627\u0644 ", text).replace(
            "\u0627\u0644 \u0644\u0647", "\u0627\u0644\u0644\u0647"
        )
    if arabic:
        # ICU romanises no Urdu or Pashto letter of its own (ہ ے ڈ ٹ ڑ ں, ښ ګ ...): read each as the
        # Arabic or Persian letter a Latin spelling of it follows (چوہدری = Chaudhry); ta marbuta as a.
        text = text.translate(_URDU_PASHTO)
        if "\u0647" in text:
            # Persian writes a final -e or -a with a silent ه (زاده = zadeh or zada, فاطمه = Fatemeh):
            # after a consonant, at the end of a word of four letters or more, read it as that vowel.
            text = _FINAL_HEH.sub("\u0627", text)
            # A letter read t, s, k, d, z, g or p before ه would make a digraph of it (طه = "th", read as
            # ث): the short vowel the script leaves out is written in (Taha, Dehqan).
            text = _BEFORE_HEH.sub("\\1\u064e", text)
    latin = str(_transliterator(_ICU_GENERAL).transliterate(text))
    if arabic:
        # Ayn (ʿ) opening a word is heard as a vowel (علي = Ali, عمر = Omar); inside a word it is
        # dropped (سعيد = Said). The script writes no short vowels, so restore Allah's.
        latin = _AYN_INITIAL.sub("a", latin).replace("\u02bf", "").replace("\u02be", "")
        latin = _ALLAH.sub("allah", latin)
        latin = _ARABIC_BIN.sub("bin", _ARABIC_IBN.sub("ibn", latin))
        latin = _ARABIC_ABD_AL.sub("abdal", latin)
    return latin


def _form_at(raw: list[str], start: int, stop: int, from_end: bool, fuzzy: bool = True) -> tuple[str, int] | None:
    """The longest legal form ending at `stop` (from_end) or starting at `start`, with its length."""
    edge_word = raw[stop - 1] if from_end else raw[start]
    if edge_word not in (_FORM_LAST_WORDS if from_end else _FORM_FIRST_WORDS) and not (fuzzy and len(edge_word) >= 5):
        return None  # most words are no form word at all: skip building candidate tuples
    for size in range(min(_FORM_LEN_MAX, stop - start), 0, -1):
        words = raw[stop - size : stop] if from_end else raw[start : start + size]
        canon = _FORM_LOOKUP.get(tuple(words))
        if canon is None and size == 1 and fuzzy:
            canon = _fuzzy_form(words[0])
        if canon is not None:
            return canon, size
    return None


def _tokens(latin: str, abbreviations: bool = True) -> tuple[str, ...]:
    """abbreviations=False for a name read from Arabic script, which writes no abbreviated titles: there
    "adm" is Adam (ادم), not Admiral, and "mr" Mir."""
    lowered = latin.lower()
    # Most names hold neither an apostrophe nor a dot: the two substitutions only run when they can match.
    if not lowered.isascii() or "'" in lowered or "`" in lowered:
        lowered = _APOSTROPHES.sub("", lowered)
    if "." in lowered:
        # "G.m.b.H.", "S.A.R.L.", "p.l.c." are one word each.
        lowered = _DOTTED.sub(lambda m: m.group(0).replace(".", ""), lowered)
    raw = _NON_ALNUM.sub(" ", lowered).split()[: TOKENS_MAX * 2]
    # Legal forms stand at either end of a name ("OOO Romashka", "Sabalan Company", "X Co. Ltd");
    # in the middle the same letters are usually a name ("Ao" in a transliterated Chinese name).
    head: list[str] = []
    tail: list[str] = []
    lo, hi = 0, len(raw)
    while hi - lo > 1:
        found = _form_at(raw, lo, hi, from_end=True)
        if found is None or hi - found[1] <= lo:
            break
        tail.insert(0, FORM_PREFIX + found[0])
        hi -= found[1]
    while hi - lo > 1:
        found = _form_at(raw, lo, hi, from_end=False)
        if found is None or lo + found[1] >= hi or (found[1] == 1 and raw[lo] in _TRAILING_ONLY_FORMS):
            break
        head.append(FORM_PREFIX + found[0])
        lo += found[1]
    # Inside the name only unambiguous forms count ("Energy Pte Ltd Yuk Tung" after reordering).
    middle: list[str] = []
    i = lo
    while i < hi:
        found = _form_at(raw, i, hi, from_end=False, fuzzy=False)
        if found is not None and not (found[1] == 1 and raw[i] in _EDGE_ONLY_FORMS):
            middle.append(FORM_PREFIX + found[0])
            i += found[1]
        else:
            middle.append(raw[i])
            i += 1
    if all(is_form(t) for t in middle):
        middle = raw[lo:hi]
    if abbreviations:
        middle = [t for t in middle if t not in HONORIFICS] or middle
    return tuple([*head, *middle, *tail][:TOKENS_MAX])


def _script_tokens(text: str) -> tuple[str, ...]:
    """Fallback for scripts ICU cannot romanise (Khmer, ...): compare in the original script."""
    spaced = "".join(" " if unicodedata.category(ch)[0] in "PSZC" else ch for ch in text.casefold())
    return tuple(w for w in spaced.split() if not w.isdigit())[:TOKENS_MAX]


@lru_cache(maxsize=65536)
def name_variants(name: str) -> tuple[tuple[str, ...], ...]:
    """All token readings of a name, empty when nothing name-like is left."""
    text = unicodedata.normalize("NFKC", name[:NAME_CHARS_MAX]).strip()
    if not text:
        return ()
    readings: list[str] = []
    if text.isascii():
        readings.append(text)
    elif any(_is_han(ch) for ch in text):
        korean = _hanja_to_hangul(text)
        if korean is not None:
            readings.append(romanize_hangul(korean))
        readings.append(str(_transliterator(_ICU_HAN).transliterate(romanize_hangul(text))))
    elif any(_is_hangul(ch) for ch in text):
        readings.append(romanize_hangul(text))
    else:
        readings.append(text)
        if _looks_korean_cyrillic(text):
            readings.append(_korean_cyrillic(text))
        elif any("\u30a0" <= ch <= "\u30ff" for ch in text):
            readings[-1:] = _katakana_readings(text)
        elif any("\u0370" <= ch <= "\u03ff" or "\u1f00" <= ch <= "\u1fff" for ch in text):
            readings.extend(_greek_readings(text))
        elif any("\u0900" <= ch <= "\u097f" for ch in text):
            readings[-1:] = _devanagari_readings(text)
        elif any("\u0400" <= ch <= "\u04ff" for ch in text):
            # Russian spells a foreign name by ear: J as дж and H as х, which BGN gives back as "dzh"
            # and "kh" (Джамал Хаджи = Jamal Haji, not "Dzhamal Khadzhi").
            folded = _ascii_fold(text).lower()
            foreign = folded.replace("dzh", "j").replace("kh", "h")
            if foreign != folded:
                readings.append(foreign)
    variants: list[tuple[str, ...]] = []
    arabic = any("\u0600" <= ch <= "\u06ff" for ch in text)
    if arabic and any(ch in _PERSIAN_SOUNDS for ch in text):
        # Persian, Urdu and Pashto say these letters as s or z (ثاقب = Saqib, فضل = Fazal), Arabic as
        # th, dh, d (Thaqib, Fadl): both readings.
        readings.append(text.translate(_PERSIAN_READING))
    for reading in readings:
        tokens = _tokens(_ascii_fold(reading), not arabic) or _script_tokens(reading)
        if arabic and len(tokens) > 1:
            tokens = _abjad_forms(tokens)
        if tokens and tokens not in variants:
            variants.append(tokens)
    return tuple(variants)


# ث as س; ذ, ض and ظ as ز.
_PERSIAN_READING: Final = str.maketrans(
    {"\u062b": "\u0633", "\u0630": "\u0632", "\u0636": "\u0632", "\u0638": "\u0632"}
)
_PERSIAN_SOUNDS: Final = frozenset("\u062b\u0630\u0636\u0638")
# The article's l is said as the next letter when that is a "sun letter" (t th d dh r z s sh ṣ ḍ ṭ ẓ l n):
# Nasir al-Din is Nasiruddin, Abd al-Rahman Abdurrahman. As read from Arabic script, those words start
# with one of these.
_SUN_LETTERS: Final = frozenset("tdrzsln")


def assimilated(tokens: tuple[str, ...]) -> tuple[str, ...] | None:
    """A name read from Arabic script with the article's l dropped before a sun letter, as a Latin
    spelling that joins the words writes it (nsyr al dyn -> nsyr dyn, abdal rhmn -> abda rhmn); None
    when the name has no such article."""
    out: list[str] = []
    changed = False
    n = len(tokens)
    for i in range(n):
        t = tokens[i]
        if i + 1 < n and (t == "al" or t == "abdal") and tokens[i + 1][:1] in _SUN_LETTERS:
            changed = True
            if t != "al":
                out.append(t[:-1])
            continue
        out.append(t)
    return tuple(out) if changed else None


# A company name written in Arabic script spells its legal form by sound (كومباني, كوربوريشن), which no
# vowel-less reading spells like "company": long form words are recognised by skeleton instead.
_FORM_SKELETON_WORDS: Final = ("company", "corporation", "limited", "incorporated", "compania", "companhia")


def _abjad_forms(tokens: tuple[str, ...]) -> tuple[str, ...]:
    out = tuple(
        FORM_PREFIX + _FORM_SKELETONS[key] if len(t) >= 5 and (key := abjad_key(t)) in _FORM_SKELETONS else t
        for t in tokens
    )
    if out[-1] == "kw":  # "X Co." written كو: at the end of a name it is the form, not a name
        out = (*out[:-1], FORM_PREFIX + "co")
    return out if not all(is_form(t) for t in out) else tokens


def clear_word_caches() -> None:
    """Forget every memoised name and word reading (first-sight benchmarks)."""
    name_variants.cache_clear()
    phonetic_key.cache_clear()
    abjad_key.cache_clear()
    _fuzzy_form.cache_clear()


def normalize_name(name: str) -> str:
    """The first reading of a name as one space-separated string ("" when nothing is left)."""
    variants = name_variants(name)
    return " ".join(variants[0]) if variants else ""


_ABJAD_DIGRAPHS: Final = (
    ("tsh", "C"),
    ("sh", "S"),
    ("kh", "X"),
    ("gh", "G"),
    ("th", "T"),
    ("dh", "z"),
    ("ch", "C"),
    ("ph", "f"),
)
_FRENCH_DJ: Final = re.compile(r"(?:^|(?<=[aeiouy]))dj")
_ABJAD_FOLD: Final = str.maketrans(
    {"q": "k", "c": "k", "v": "f", "p": "b", "j": "J", "g": "J", **dict.fromkeys("aeiouwy", "")}
)


@lru_cache(maxsize=65536)
def abjad_key(text: str) -> str:
    """The letters an abjad writes: consonants, h kept (ح and ه are letters), sh/kh/gh/th one letter
    each, vowels and the vowel letters w/y gone after the first letter, doubled letters once. Persian
    and Urdu say ذ ض ظ as z (Fazal, Nazir); "allah" loses its vowels like the rest. Arabic has no
    letter for ch and writes it ت + ش (tsh)."""
    word = text.replace("allah", "llh").replace("ull", "ul") if "ll" in text else text
    if word[:3] == "llh" and text[:1] == "a":
        word = "a" + word  # a name that starts with Allah keeps its alif (Allahdad is not Leila Haddad)
    if word[-2:] == "eh" and len(word) > 3:
        word = word[:-1]  # a Latin -eh is Persian's silent final ه (Zadeh, Fatemeh), read as a vowel
    if "dj" in word:
        # The French spelling of j (Djamel, Hadj: جمال, حاج); after a consonant it is more likely two
        # letters, as a reading of د ج gives them.
        word = _FRENCH_DJ.sub("j", word)
    if "h" in word:  # every digraph ends in h
        for src, dst in _ABJAD_DIGRAPHS:
            word = word.replace(src, dst)
    if not word:
        return ""
    head = "a" if word[0] in "aeiouwy" else word[0].translate(_ABJAD_FOLD)
    return head + _collapse_runs(word[1:].translate(_ABJAD_FOLD), "")


def _collapse_runs(text: str, kept: str) -> str:
    """Each run of one character as that character once ("mohammad" -> "mohamad"), except runs of
    `kept` ("\n" gives re.sub(r"(.)\1+", r"\1", text), whose "." does not match a line break)."""
    out: list[str] = []
    prev = ""
    for ch in text:
        if ch != prev or ch == kept:
            out.append(ch)
        prev = ch
    return "".join(out)


_PHONETIC_RULES: Final[tuple[tuple[str, str], ...]] = (
    ("sch", "s"),
    ("tch", "j"),
    ("dzh", "j"),
    ("dj", "j"),
    ("zh", "j"),
    ("ch", "j"),
    ("tsh", "j"),
    ("sh", "s"),
    ("ph", "f"),
    ("th", "t"),
    ("dh", "t"),
    ("kh", "k"),
    ("gh", "k"),
    ("ck", "k"),
    ("ng", "n"),
    ("qu", "k"),
    ("ts", "s"),
    ("tz", "s"),
    ("x", "ks"),
)
# Without an h only these can apply (and none of them writes an h).
_PHONETIC_RULES_NO_H: Final = tuple([rule for rule in _PHONETIC_RULES if "h" not in rule[0]])
_PHONETIC_CLASS: Final = str.maketrans(
    {
        "b": "p",
        "d": "t",
        "g": "k",
        "q": "k",
        "c": "k",
        "v": "f",
        "w": "",
        "y": "",
        "h": "",
        "z": "s",
        "a": "",
        "e": "",
        "i": "",
        "o": "",
        "u": "",
    }
)


@lru_cache(maxsize=65536)
def phonetic_key(token: str) -> str:
    """A consonant skeleton: Gaddafi, Qaddafi and Kadhafi share "ktf"; Muhammad and Mohamed "mmt".

    Vowels, w, y and h vanish after the first letter because transliterations from abjads (Arabic,
    Persian) and Cyrillic disagree mostly on those; a leading vowel is kept as "a" so Usama and Osama
    agree but do not collide with consonant-initial names.
    """
    if not token or token.startswith(FORM_PREFIX):
        return ""
    word = _collapse_runs(token, "\n")
    for src, dst in _PHONETIC_RULES if "h" in word else _PHONETIC_RULES_NO_H:
        word = word.replace(src, dst)
    if "c" in word:
        # A soft c, before e, i or y, is an s: re.sub(r"c(?=[eiy])", "s", word), spelt out.
        word = word.replace("ce", "se").replace("ci", "si").replace("cy", "sy")
    head = "a" if word[0] in "aeiouyw" else ""
    body = (word[0] if not head and word[0] != "h" else "") + word[1:]
    if word[0] == "h":
        head = "h"
    return head + body.translate(_PHONETIC_CLASS)


_FORM_SKELETONS: Final[dict[str, str]] = {}


def is_form(token: str) -> bool:
    return token.startswith(FORM_PREFIX)


_FORM_SKELETONS.update({abjad_key(w): _FORM_LOOKUP[(w,)] for w in _FORM_SKELETON_WORDS})
