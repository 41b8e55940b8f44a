"""Screening evaluation: per-kind recall, false-positive rate, F1 and throughput, on a held-out split.

Run: .venv/bin/python bench/screening_eval.py [--split heldout|calibration|both] [--per-kind N] [--seed N]

Everything is generated at run time from ../shared/data/sanctions (relative to the repo root) and from
the name parts written down below; nothing generated is stored. The UN list's entities are split in
two with a fixed seed: the calibration half is what thresholds and weights may be tuned on, the
held-out half is only ever measured. Ordinary (non-listed) names are generated with a different seed
per split, and the rows of the eval/ negative files are split the same way.

Positive kinds (each a perturbation of a listed name of an entity in the split):
  script_cyrillic, script_arabic  Latin name written the way a Russian / Arabic clerk would
  script_other                    Latin name in Greek, Katakana or Devanagari (ICU)
  latin_of_script                 the reverse: a person's Latin name queried against an index that
                                  holds only the original-script names (UN NAME_ORIGINAL_SCRIPT)
  hangul, hanja                   DPRK names written in Hangul / Han characters
  reordered, dropped_middle, added_middle, typo, initials, hyphen_spacing, diacritics
A positive counts as found when the screener hits (score >= review threshold) on the expected entity,
or on another entity whose listed name contains every word of the query (a dropped middle name can
leave "Kim Chol", which is as much every listed "Kim Chol ..."): those are counted apart.
A negative counts as a false positive when the screener hits on anything. Generated negatives that are
a listed name (same words) are dropped before scoring, and counted.
"""

from __future__ import annotations

import argparse
import csv
import random
import re
import sys
import time
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / ".." / "shared" / "data" / "sanctions"
sys.path.insert(0, str(ROOT / "src"))

from setara.compliance import Screener, load_list_path  # noqa: E402
from setara.compliance import matcher as matcher  # noqa: E402
from setara.compliance._hanja import HANJA_KOREAN  # noqa: E402
from setara.compliance.lists import Entity, ListData  # noqa: E402
from setara.compliance.normalize import (  # noqa: E402
    _HANGUL_INITIALS,
    _HANGUL_VOWELS,
    name_variants,
    phonetic_key,
)

SEED_DEFAULT = 20261207
SPLITS = ("calibration", "heldout")
POSITIVE_KINDS = (
    "script_cyrillic",
    "script_arabic",
    "script_other",
    "latin_of_script",
    "hangul",
    "hanja",
    "reordered",
    "dropped_middle",
    "added_middle",
    "typo",
    "initials",
    "hyphen_spacing",
    "diacritics",
)


@dataclass(frozen=True, slots=True)
class Query:
    text: str
    expected: str | None  # entity id, None for an ordinary name
    kind: str
    index: str = "full"  # "full" list, or "script" (original-script names only)
    source_name: str = ""


@dataclass
class Tally:
    n: int = 0
    found: int = 0
    found_other: int = 0
    examples: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------- scripts

# A Russian clerk writes a foreign name by its sound, longest letter group first.
_CYRILLIC = (
    ("shch", "щ"), ("sch", "ш"), ("sh", "ш"), ("ch", "ч"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"),
    ("tz", "ц"), ("ya", "я"), ("yu", "ю"), ("yo", "ё"), ("ye", "е"), ("ck", "к"), ("th", "т"),
    ("dh", "д"), ("gh", "г"), ("ph", "ф"), ("ou", "у"), ("ee", "и"), ("oo", "у"), ("j", "дж"),
    ("a", "а"), ("b", "б"), ("c", "к"), ("d", "д"), ("e", "е"), ("f", "ф"), ("g", "г"), ("h", "х"),
    ("i", "и"), ("k", "к"), ("l", "л"), ("m", "м"), ("n", "н"), ("o", "о"), ("p", "п"), ("q", "к"),
    ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"), ("v", "в"), ("w", "у"), ("x", "кс"), ("y", "й"),
    ("z", "з"),
)
_CYRILLIC_VOWELS = set("аеёиоуыэюя")

# Arabic writes consonants and long vowels; short vowels inside a word are not written.
_ARABIC_CONS = (
    ("th", "ث"), ("sh", "ش"), ("kh", "خ"), ("gh", "غ"), ("dh", "ذ"), ("ch", "تش"), ("ph", "ف"),
    ("j", "ج"), ("b", "ب"), ("t", "ت"), ("d", "د"), ("r", "ر"), ("z", "ز"), ("s", "س"), ("f", "ف"),
    ("q", "ق"), ("k", "ك"), ("l", "ل"), ("m", "م"), ("n", "ن"), ("h", "ه"), ("w", "و"), ("y", "ي"),
    ("p", "ب"), ("v", "ف"), ("g", "ج"), ("c", "ك"), ("x", "كس"),
)


def _greedy(word: str, table: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i = 0
    while i < len(word):
        for src, dst in table:
            if word.startswith(src, i):
                out.append((src, dst))
                i += len(src)
                break
        else:
            i += 1
    return out


def _latin_words(name: str) -> list[str]:
    folded = unicodedata.normalize("NFKD", name.lower())
    folded = "".join(ch for ch in folded if ch.isascii() and (ch.isalpha() or ch in " -"))
    return folded.replace("-", " ").split()


def to_cyrillic(name: str) -> str:
    words: list[str] = []
    for w in _latin_words(name):
        parts = _greedy(w, _CYRILLIC)
        text = ""
        for k, (src, dst) in enumerate(parts):
            if src == "e" and k == 0:
                dst = "э"
            elif src == "y" and k + 1 < len(parts) and parts[k + 1][1] in _CYRILLIC_VOWELS:
                dst = "й"
            elif src == "y" and (k == 0 or text[-1:] not in _CYRILLIC_VOWELS):
                dst = "и"
            text += dst
        words.append(text.capitalize())
    return " ".join(words)


ARABIC_WRITERS = ("v1", "v2")
_ABD_HEADS = ("abdul", "abdel", "abdal", "abdol")


def to_arabic(name: str, writer: str = "v1") -> str:
    """v1: the writer every published figure used. v2 mends three of its departures from how Arabic
    script writes a name (found on the calibration half, section 4 of docs/screening.md): a vowel
    pair v1 has no rule for (ai, ea, ia, ae, eo) is written ي (or و for one with o or u), with a
    final ا when it ends in a (Korea = كوريا, not كور); Abdul standing alone joins its article to the
    next word (عبد الفتاح, not عبد ال فته); c before e, i or y is س."""
    words: list[str] = []
    pending_article = False
    for w in _latin_words(name):
        if w in ("al", "el"):
            pending_article = True
            continue
        if writer == "v2" and w in _ABD_HEADS:
            words.append("عبد")  # its article goes with the next word
            pending_article = True
            continue
        prefix = ""
        for head in _ABD_HEADS:
            if w.startswith(head):
                prefix, w = "عبد ال", w[len(head):]
                break
        text = ""
        i = 0
        while i < len(w):
            ch = w[i]
            if ch in "aeiou":
                run = ch
                while i + len(run) < len(w) and w[i + len(run)] in "aeiou":
                    run += w[i + len(run)]
                last = i + len(run) >= len(w)
                if i == 0:
                    text += "ا" if run[0] in "ae" else ("او" if run[0] in "ou" else "اي")
                elif (run in ("aa", "a") and last) or run == "aa":
                    text += "ا"
                elif run in ("ee", "ii", "i", "ie", "ei") and (last or len(run) > 1 or ch == "i"):
                    text += "ي"
                elif run[0] in "ou":
                    text += "و"
                    if writer == "v2" and last and len(run) > 1 and run.endswith("a"):
                        text += "ا"
                elif writer == "v2" and len(run) > 1:
                    text += "ي" if any(c in "ie" for c in run) else "و"
                    if last and run.endswith("a"):
                        text += "ا"
                i += len(run)
                continue
            if writer == "v2" and ch == "c" and i + 1 < len(w) and w[i + 1] in "eiy":
                text += "" if text.endswith("س") else "س"
                i += 1
                continue
            parts = _greedy(w[i:], _ARABIC_CONS)
            if not parts:
                i += 1
                continue
            src, dst = parts[0]
            if text.endswith(dst):
                dst = ""  # a doubled consonant is written once (shadda unwritten)
            text += dst
            i += len(src)
        word = prefix + text
        if not word:
            continue
        if pending_article:
            word = "ال" + word
            pending_article = False
        words.append(word)
    return " ".join(words)


_ICU_SCRIPTS = ("Latin-Greek", "Latin-Katakana", "Latin-Devanagari")


def to_icu_script(name: str, spec: str) -> str:
    import icu

    return str(icu.Transliterator.createInstance(spec).transliterate(" ".join(_latin_words(name))))


# Hangul from a McCune-Reischauer-style syllable ("jong" -> 정 or 종: the Latin is ambiguous, so any
# syllable that romanises to it may be picked, as a writer of Korean would).
_ROM_INITIAL: dict[str, list[int]] = {}
for _i, _r in enumerate(_HANGUL_INITIALS):
    _ROM_INITIAL.setdefault(_r, []).append(_i)
for _alt, _r in (("g", "k"), ("d", "t"), ("b", "p"), ("l", "r"), ("", "")):
    _ROM_INITIAL.setdefault(_alt, list(_ROM_INITIAL.get(_r, [])))
_ROM_VOWEL: dict[str, list[int]] = {}
for _i, _r in enumerate(_HANGUL_VOWELS):
    _ROM_VOWEL.setdefault(_r, []).append(_i)
_ROM_FINAL: dict[str, list[int]] = {"": [0], "k": [1], "n": [4], "t": [7], "l": [8], "m": [16], "p": [17], "ng": [21]}


def _syllable(rom: str, rng: random.Random) -> str | None:
    for ini in sorted(_ROM_INITIAL, key=len, reverse=True):
        if not rom.startswith(ini):
            continue
        rest = rom[len(ini):]
        for fin in sorted(_ROM_FINAL, key=len, reverse=True):
            if not rest.endswith(fin):
                continue
            vowel = rest[: len(rest) - len(fin)] if fin else rest
            if vowel in _ROM_VOWEL and _ROM_INITIAL[ini]:
                code = 0xAC00 + (rng.choice(_ROM_INITIAL[ini]) * 21 + rng.choice(_ROM_VOWEL[vowel])) * 28
                return chr(code + _ROM_FINAL[fin][0])
    return None


def to_hangul(name: str, rng: random.Random) -> str | None:
    syllables: list[str] = []
    for w in _latin_words(name):
        s = _syllable(w, rng)
        if s is None:
            return None
        syllables.append(s)
    return "".join(syllables) if len(syllables) >= 2 else None


_HANJA_BY_READING: dict[str, list[str]] = {}
for _han, _reading in HANJA_KOREAN.items():
    _HANJA_BY_READING.setdefault(_reading, []).append(_han)


def to_hanja(hangul: str, rng: random.Random) -> str | None:
    out: list[str] = []
    for ch in hangul:
        options = _HANJA_BY_READING.get(ch)
        if not options:
            return None
        out.append(rng.choice(sorted(options)))
    return "".join(out)


# ------------------------------------------------------------------------------------- Latin edits


def _typo(token: str, rng: random.Random) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    i = rng.randrange(len(token))
    op = rng.choice(("sub", "del", "ins", "swap"))
    if op == "sub":
        return token[:i] + rng.choice(alphabet.replace(token[i].lower(), "")) + token[i + 1:]
    if op == "del" and len(token) > 3:
        return token[:i] + token[i + 1:]
    if op == "swap" and i < len(token) - 1:
        return token[:i] + token[i + 1] + token[i] + token[i + 2:]
    return token[:i] + rng.choice(alphabet) + token[i:]


_MIDDLE_NAMES = "Ali Ahmed Mohammed Hassan Ibrahim Yusuf John Maria Jose Ivanovich Kumar Binti Chol Nam".split()
_DIACRITICS = {"a": "áàâäã", "e": "éèêë", "i": "íïî", "o": "óöôõ", "u": "úüû", "c": "ç", "n": "ñ", "s": "şš", "z": "ž"}


def perturb(name: str, kind: str, rng: random.Random) -> str | None:
    tokens = name.replace(",", " ").split()
    if kind == "reordered":
        if len(tokens) < 2:
            return None
        shuffled = tokens[:]
        while shuffled == tokens:
            rng.shuffle(shuffled)
        return " ".join(shuffled)
    if kind == "dropped_middle":
        if len(tokens) < 3:
            return None
        i = rng.randrange(1, len(tokens) - 1)
        return " ".join(tokens[:i] + tokens[i + 1:])
    if kind == "added_middle":
        if len(tokens) < 2:
            return None
        i = rng.randrange(1, len(tokens))
        extra = rng.choice([m for m in _MIDDLE_NAMES if m.lower() not in name.lower()])
        return " ".join([*tokens[:i], extra.upper() if name.isupper() else extra, *tokens[i:]])
    if kind == "typo":
        long_tokens = [i for i, t in enumerate(tokens) if len(t) >= 4]
        if not long_tokens:
            return None
        i = rng.choice(long_tokens)
        return " ".join([*tokens[:i], _typo(tokens[i], rng), *tokens[i + 1:]])
    if kind == "initials":
        if len(tokens) < 3:
            return None
        i = rng.randrange(0, len(tokens) - 1)
        if len(tokens[i]) < 3:
            return None
        return " ".join([*tokens[:i], tokens[i][0] + ".", *tokens[i + 1:]])
    if kind == "hyphen_spacing":
        options: list[str] = []
        if len(tokens) >= 2:
            i = rng.randrange(len(tokens) - 1)
            options.append(" ".join([*tokens[:i], tokens[i] + "-" + tokens[i + 1], *tokens[i + 2:]]))
            options.append(" ".join([*tokens[:i], tokens[i] + tokens[i + 1], *tokens[i + 2:]]))
        for i, t in enumerate(tokens):
            m = re.match(r"(?i)(abdul|abdel|abdal|abu|al|el)(.{3,})$", t)
            if m:
                options.append(" ".join([*tokens[:i], m.group(1), m.group(2), *tokens[i + 1:]]))
                options.append(" ".join([*tokens[:i], m.group(1) + "-" + m.group(2), *tokens[i + 1:]]))
        return rng.choice(options) if options else None
    if kind == "diacritics":
        chars = list(name.lower() if rng.random() < 0.5 else name)
        spots = [i for i, ch in enumerate(chars) if ch.lower() in _DIACRITICS]
        if not spots:
            return None
        for i in rng.sample(spots, min(len(spots), rng.randint(1, 3))):
            accented = rng.choice(_DIACRITICS[chars[i].lower()])
            chars[i] = accented.upper() if chars[i].isupper() else accented
        return "".join(chars)
    raise ValueError(kind)


# ------------------------------------------------------------------------------------- ordinary names

# Name parts written down here (no generator library in the environment). Each locale: given names,
# surnames, and how a full name is put together.
_LOCALES: dict[str, tuple[str, str, str]] = {
    "indonesian": (
        "Budi Siti Agus Dewi Rina Eko Wahyu Sri Joko Putri Ayu Bambang Indah Hendra Yanti Rudi Fitri Adi "
        "Nur Andi Dian Slamet Wulan Teguh Ratna Bayu Intan Gilang Rizky Dimas",
        "Santoso Wijaya Saputra Hidayat Kusuma Pratama Nugroho Setiawan Gunawan Susanto Wibowo Sari Lestari "
        "Purnomo Hartono Siregar Nasution Simanjuntak Halim Tanoto Sutrisno Rahmawati Permana Suharto",
        "gs",
    ),
    "malay": (
        "Ahmad Nurul Siti Muhammad Aisyah Farah Hafiz Amir Zulkifli Azman Faizal Nabila Syafiq Haziq Aina "
        "Izzat Iskandar Khairul Shahrul Azlan",
        "Ismail Abdullah Ibrahim Hamzah Rahman Yusof Osman Othman Hashim Razak Salleh Zainal Kassim Ariffin "
        "Jamaluddin Mokhtar Samsudin Baharom",
        "malay",
    ),
    "thai": (
        "Somchai Somsak Suda Malee Niran Kanya Anong Prasert Wichai Siriporn Thanakorn Nattapong Kittisak "
        "Pimchanok Chalerm Rattana Supaporn Apinya Boonmee Sunee",
        "Srisawat Wongsakul Chaiyaporn Saetang Thongchai Rattanakorn Sukprasert Phromma Kaewkla Boonyarat "
        "Chantarasombat Jaidee Meesuk Pongpanich Suwannarat Thammasat",
        "gs",
    ),
    "filipino": (
        "Juan Maria Jose Ana Rodrigo Mark Angelica Jericho Rowena Lourdes Ramon Cristina Danilo Marites "
        "Joselito Analyn Rommel Bea Paolo Jasmine",
        "Dela Cruz|Santos|Reyes|Bautista|Ocampo|Garcia|Mendoza|Torres|Villanueva|Aquino|Ramos|Castillo|"
        "Navarro|Manalo|Soriano|Pascual|Macapagal|Dimaculangan|Lacson|Tolentino",
        "gms",
    ),
    "vietnamese": (
        "An Binh Chi Dung Hoa Hung Lan Linh Minh Nam Ngoc Phuong Quang Thanh Thao Trang Tuan Van Yen Duc",
        "Nguyen Tran Le Pham Hoang Huynh Phan Vu Vo Dang Bui Do Ho Ngo Duong Ly",
        "svg",
    ),
    "chinese": (
        "Wei Fang Na Min Jing Li Qiang Lei Jun Yang Yong Yan Jie Tao Ming Chao Xiu Ying Hui Hao Zhiwei Xiaoming",
        "Wang Li Zhang Liu Chen Yang Huang Zhao Wu Zhou Xu Sun Ma Zhu Hu Guo He Lin Gao Luo",
        "sg",
    ),
    "chinese_han": (
        "伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 涛 明 超 秀英 晓明 志伟 建华",
        "王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 林 高 罗",
        "sg_joined",
    ),
    "korean": (
        "Min-jun Seo-yeon Ji-hoon Ha-eun Do-yun Su-bin Ye-jin Hyun-woo Ji-woo Seung-min Eun-ji Dong-hyun "
        "Yu-na Sung-ho Hye-jin Jae-won Na-rae Tae-yang",
        "Kim Lee Park Choi Jung Kang Cho Yoon Jang Lim Han Oh Seo Shin Kwon Hwang Ahn Song Yoo Hong",
        "sg",
    ),
    "korean_hangul": (
        "민준 서연 지훈 하은 도윤 수빈 예진 현우 지우 승민 은지 동현 유나 성호 혜진 재원",
        "김 이 박 최 정 강 조 윤 장 임 한 오 서 신 권 황 안 송 유 홍",
        "sg_joined",
    ),
    "japanese": (
        "Haruto Yuto Sota Yui Hina Yuna Ren Riku Aoi Sakura Kenji Takeshi Yuki Naoko Hiroshi Akiko Daiki "
        "Kaito Mei Shota",
        "Sato Suzuki Takahashi Tanaka Watanabe Ito Yamamoto Nakamura Kobayashi Kato Yoshida Yamada Sasaki "
        "Yamaguchi Matsumoto Inoue Kimura Hayashi Shimizu Mori",
        "gs",
    ),
    "indian": (
        "Rahul Priya Amit Sunita Vikram Anjali Suresh Deepak Pooja Arjun Kavita Ravi Neha Sanjay Lakshmi "
        "Rajesh Meena Anil Divya Karthik",
        "Sharma Patel Singh Kumar Gupta Reddy Nair Iyer Rao Joshi Mehta Shah Verma Mishra Chatterjee Menon "
        "Pillai Desai Kapoor Bhat",
        "gms",
    ),
    "russian": (
        "Ivan Sergei Alexei Dmitri Olga Tatiana Natalia Andrei Mikhail Elena Irina Nikolai Pavel Anna "
        "Yuri Svetlana Vladislav Ekaterina",
        "Petrov Ivanov Smirnov Kuznetsov Popov Sokolov Lebedev Kozlov Novikov Morozov Volkov Solovyov "
        "Vasilyev Zaitsev Pavlov Semenov Golubev Vinogradov",
        "russian",
    ),
    "russian_cyrillic": (
        "Иван Сергей Алексей Дмитрий Ольга Татьяна Наталья Андрей Михаил Елена Ирина Николай Павел Анна",
        "Петров Иванов Смирнов Кузнецов Попов Соколов Лебедев Козлов Новиков Морозов Волков Соловьёв",
        "gs",
    ),
    "arabic": (
        "Ahmed Fatima Omar Layla Khalid Noor Yousef Mariam Tariq Huda Samir Rania Karim Salma Walid Dina "
        "Faisal Hana Nabil Reem",
        "Haddad Khoury Mansour Nasser Saleh Hamdan Aziz Farouk Sabbagh Qasim Darwish Barakat Jaber Khalil "
        "Najjar Shami Taha Zaki Sharif Bakr",
        "gs",
    ),
    "arabic_script": (
        "أحمد فاطمة عمر ليلى خالد نور يوسف مريم طارق هدى سمير رانيا كريم سلمى وليد",
        "حداد خوري منصور ناصر صالح حمدان عزيز فاروق صباغ قاسم درويش بركات جابر خليل نجار",
        "gs",
    ),
    "japanese_katakana": (
        "ハルト ユウト ソウタ ユイ ヒナ ユナ レン リク アオイ サクラ ケンジ タケシ ユキ ナオコ ヒロシ アキコ "
        "ダイキ カイト",
        "サトウ スズキ タカハシ タナカ ワタナベ イトウ ヤマモト ナカムラ コバヤシ カトウ ヨシダ ヤマダ ササキ マツモト "
        "イノウエ キムラ ハヤシ シミズ モリ",
        "sg",
    ),
    "greek": (
        "Γιώργος Νίκος Κώστας Δημήτρης Γιάννης Μαρία Ελένη Αικατερίνη Σοφία Άννα Παναγιώτης Βασίλης Χρήστος "
        "Ευαγγελία Αθανάσιος Ιωάννα Σταύρος Δέσποινα",
        "Παπαδόπουλος Παπαδάκης Γεωργίου Νικολάου Οικονόμου Βασιλείου Κωνσταντίνου Δημητρίου Ιωάννου Αντωνίου "
        "Μαυρίδης Καραγιάννης Παππάς Σταματόπουλος Αλεξίου Ζαχαρίου",
        "gs",
    ),
    "indian_devanagari": (
        "राहुल प्रिया अमित सुनीता विक्रम अंजलि सुरेश दीपक पूजा अर्जुन कविता रवि नेहा संजय लक्ष्मी राजेश",
        "शर्मा पटेल सिंह कुमार गुप्ता रेड्डी जोशी मेहता शाह वर्मा मिश्रा कपूर देसाई राव",
        "gms",
    ),
    "european": (
        "Hans Anna Pierre Marie Giovanni Giulia Carlos Lucia Jan Eva Lars Ingrid Piotr Katarzyna Joao Ines "
        "Dimitris Eleni Sean Siobhan Matthias Sophie Luca Elena Tomas Zuzana",
        "Müller Schmidt Dubois Lefèvre Rossi Bianchi García Fernández de Vries Jansen Andersson Nilsson "
        "Kowalski Nowak Silva Santos Papadopoulos O'Brien Murphy Novák Horváth Virtanen Jensen Leclerc",
        "gs",
    ),
}
_LATER_LOCALES = frozenset(("japanese_katakana", "greek", "indian_devanagari"))
_COMPANY_WORDS = (
    "Sinar Jaya Abadi Makmur Sentosa Golden Dragon Pacific Harbour Lotus Nusantara Mekong Siam Delta "
    "Orchid Bayu Borneo Emerald Sakura Han River Evergreen Summit Nordic Alpine Atlas Meridian Phoenix "
    "Sunrise Cedar Oasis Crescent Horizon Unity Pioneer Royal Star Ocean Green Valley Silver Bridge"
).split()
_COMPANY_TRADES = (
    "Trading Logistics Holdings Textiles Foods Shipping Engineering Electronics Plantations Capital "
    "Resources Construction Pharma Solutions Agro Motors Digital Fisheries Energy Travel"
).split()
_LEGAL_FORMS = (
    "PT|Tbk|Sdn Bhd|Berhad|Co., Ltd.|Co Ltd|Pte Ltd|Limited|Ltd|Inc.|Corporation|LLC|GmbH|AG|S.A.|SARL|"
    "S.p.A.|S.r.l.|B.V.|N.V.|PLC|JSC|OOO|Company Limited|Public Company Limited|Corp.|K.K.|Co.|LLP|Pvt Ltd"
).split("|")
_LEADING_FORMS = ("PT", "OOO", "CV")


def _parts(text: str) -> list[str]:
    return text.split("|") if "|" in text else text.split()


def ordinary_name(locale: str, rng: random.Random) -> str:
    given_text, surname_text, form = _LOCALES[locale]
    given, surnames = _parts(given_text), _parts(surname_text)
    g, s = rng.choice(given), rng.choice(surnames)
    if form == "gs":
        return f"{g} {s}" if rng.random() < 0.8 else f"{g} {rng.choice(given)} {s}"
    if form == "gms":
        return f"{g} {rng.choice(given)} {s}" if rng.random() < 0.5 else f"{g} {s}"
    if form == "sg":
        return f"{s} {g}" if rng.random() < 0.7 else f"{g} {s}"
    if form == "sg_joined":
        return s + g
    if form == "svg":
        return f"{s} {rng.choice(['Van', 'Thi', 'Duc', 'Minh', 'Ngoc'])} {g}"
    if form == "malay":
        link = rng.choice(["bin", "binti", "bin", "binti", ""])
        return f"{g} {rng.choice(given)} {link} {s}".replace("  ", " ") if rng.random() < 0.4 else f"{g} {link} {s}"
    if form == "russian":
        patronymic = rng.choice(given).rstrip("ai") + rng.choice(["ovich", "evich", "ovna"])
        return f"{g} {patronymic} {s}" if rng.random() < 0.5 else f"{g} {s}"
    raise ValueError(form)


def company_name(rng: random.Random) -> str:
    words = rng.sample(_COMPANY_WORDS, rng.choice((1, 2, 2, 3)))
    body = " ".join([*words, rng.choice(_COMPANY_TRADES)])
    form = rng.choice(_LEGAL_FORMS)
    if form in _LEADING_FORMS and rng.random() < 0.7:
        return f"{form} {body}"
    return f"{body} {form}"


# ------------------------------------------------------------------------------------- query sets


def _norm_set(name: str) -> set[tuple[str, ...]]:
    return {tuple(sorted(v)) for v in name_variants(name)}


def split_entities(data: ListData, seed: int) -> dict[str, list[Entity]]:
    ids = sorted(e.id for e in data.entities)
    random.Random(seed).shuffle(ids)
    calibration = set(ids[: len(ids) // 2])
    out: dict[str, list[Entity]] = {s: [] for s in SPLITS}
    for e in data.entities:
        out["calibration" if e.id in calibration else "heldout"].append(e)
    return out


def original_scripts(path: Path) -> dict[str, list[str]]:
    from lxml import etree

    parser = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False)
    root = etree.parse(str(path), parser).getroot()
    out: dict[str, list[str]] = {}
    for el in root.iter("INDIVIDUAL", "ENTITY"):
        dataid = (el.findtext("DATAID") or "").strip()
        for orig in el.iter("NAME_ORIGINAL_SCRIPT"):
            if orig.text and orig.text.strip():
                out.setdefault(dataid, []).append(orig.text.strip())
    return out


def positives(entities: Sequence[Entity], scripts: dict[str, list[str]], split: str, seed: int,
              per_kind: int, arabic_writer: str = "v1") -> list[Query]:
    rng = random.Random(f"{seed}:{split}:positives")
    # Some listed "names" carry a birth date or passport number: not a name anyone would type.
    latin = [(e, n) for e in entities for n in e.names if n.isascii() and not any(c.isdigit() for c in n)]
    people = [(e, n) for e, n in latin if e.type == "person"]
    korean = [(e, n) for e, n in people if e.programme == "DPRK" or "KP" in e.countries]
    queries: list[Query] = []
    for kind in POSITIVE_KINDS:
        if kind in ("dropped_middle", "added_middle", "initials"):
            pool = people[:]
        elif kind in ("hangul", "hanja"):
            pool = korean[:]
        elif kind == "latin_of_script":
            # Persons only: an organisation's original-script name is a translation ("Islamic State"
            # is al-Dawla al-Islamiya), which no reading of the letters can match.
            pool = [(e, e.names[0]) for e in entities
                    if e.id in scripts and e.type == "person" and e.names[0].isascii()]
        else:
            pool = latin[:]
        rng.shuffle(pool)
        made = 0
        seen: set[str] = set()
        for e, name in pool:
            if made >= per_kind:
                break
            text: str | None
            index = "full"
            if kind == "script_cyrillic":
                text = to_cyrillic(name)
            elif kind == "script_arabic":
                text = to_arabic(name, arabic_writer)
            elif kind == "script_other":
                text = to_icu_script(name, rng.choice(_ICU_SCRIPTS))
            elif kind == "latin_of_script":
                text, index = name, "script"
            elif kind == "hangul":
                text = to_hangul(name, rng)
            elif kind == "hanja":
                hangul = to_hangul(name, rng)
                text = to_hanja(hangul, rng) if hangul else None
            else:
                text = perturb(name, kind, rng)
            if not text or text in seen or not name_variants(text):
                continue
            seen.add(text)
            queries.append(Query(text, e.id, kind, index, name))
            made += 1
    return queries


def negatives(split: str, seed: int, per_locale: int, listed: set[tuple[str, ...]]) -> tuple[list[Query], int]:
    rng = random.Random(f"{seed}:{split}:negatives")
    out: list[Query] = []
    dropped = 0
    seen: set[str] = set()

    def add(text: str, kind: str) -> None:
        nonlocal dropped
        if text in seen:
            return
        seen.add(text)
        if _norm_set(text) & listed:
            dropped += 1
            return
        out.append(Query(text, None, kind))

    for locale in _LOCALES:
        # Locales added later draw from their own generator, so the names of the others stay as they were.
        draw = random.Random(f"{seed}:{split}:negatives:{locale}") if locale in _LATER_LOCALES else rng
        for _ in range(per_locale * 3):
            if sum(1 for q in out if q.kind == f"neg_{locale}") >= per_locale:
                break
            add(ordinary_name(locale, draw), f"neg_{locale}")
    for _ in range(per_locale * 4):
        add(company_name(rng), "neg_company")
    # The eval/ files: rows split in two by a seeded shuffle of their numbers.
    for file, kind in (("negatives_global.csv", "neg_eval_global"), ("negatives_us.csv", "neg_eval_us")):
        path = DATA / "eval" / file
        with path.open(encoding="utf-8") as fh:
            rows = [r["full_name"].strip() for r in csv.DictReader(fh) if r["full_name"].strip()]
        order = list(range(len(rows)))
        random.Random(f"{seed}:{file}").shuffle(order)
        half = set(order[: len(order) // 2]) if split == "calibration" else set(order[len(order) // 2:])
        for i in sorted(half):
            add(rows[i], kind)
    return out, dropped


# ------------------------------------------------------------------------------------- scoring


def _consistent(query: str, entity: Entity) -> bool:
    """Every word of the query (by spelling or sound) is in one of the entity's names."""
    qs = [set(v) for v in name_variants(query)]
    for n in entity.names:
        for v in name_variants(n):
            words = set(v) | {phonetic_key(t) for t in v}
            if any(all(t in words or phonetic_key(t) in words for t in q) for q in qs):
                return True
    return False


def evaluate(queries: Sequence[Query], screeners: dict[str, Screener], by_id: dict[str, Entity],
             show: int) -> dict[str, object]:
    kinds: dict[str, Tally] = {}
    tp = fn = fp = 0
    neg_n = neg_hits = 0
    for q in queries:
        m = screeners[q.index].screen(q.text)
        t = kinds.setdefault(q.kind, Tally())
        t.n += 1
        if q.expected is not None:
            if m.hit and m.entity_id == q.expected:
                t.found += 1
                tp += 1
            elif m.hit and m.entity_id in by_id and _consistent(q.text, by_id[m.entity_id]):
                t.found += 1
                t.found_other += 1
                tp += 1
            else:
                fn += 1
                if m.hit:
                    fp += 1  # a hit on an unrelated entity is also a false alarm
                if len(t.examples) < show:
                    t.examples.append(f"{q.text!r} (from {q.source_name!r}) -> {m.score} {m.matched_name!r}")
        else:
            neg_n += 1
            if m.hit:
                neg_hits += 1
                fp += 1
                t.found += 1
                if len(t.examples) < show:
                    t.examples.append(f"{q.text!r} -> {m.score} {m.matched_name!r} ({m.entity_id})")
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "positives": tp + fn,
        "negatives": neg_n,
        "recall": round(recall, 4),
        "fpr": round(neg_hits / neg_n, 4) if neg_n else 0.0,
        "precision": round(precision, 4),
        "f1": round(f1, 4),
        "per_kind": {
            k: {"n": t.n, "rate": round(t.found / t.n, 4) if t.n else 0.0, "other_entity": t.found_other,
                "examples": t.examples}
            for k, t in kinds.items()
        },
    }


def throughput(texts: Sequence[str], make: Callable[[], Screener]) -> dict[str, float]:
    """Distinct new names per CPU second with the index loaded: caches cleared, index built first."""
    rates: list[float] = []
    for _ in range(3):
        matcher.clear_caches()
        screener = make()
        t0 = time.process_time()
        for text in texts:
            screener.screen(text)
        rates.append(len(texts) / (time.process_time() - t0))
    rate = sorted(rates)[1]
    return {"names": len(texts), "names_per_s": round(rate), "us_per_name": round(1e6 / rate, 1),
            "runs": [round(r) for r in rates]}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=(*SPLITS, "both"), default="heldout")
    parser.add_argument("--seed", type=int, default=SEED_DEFAULT)
    parser.add_argument("--per-kind", type=int, default=300, help="positives per kind and split")
    parser.add_argument("--per-locale", type=int, default=250, help="ordinary names per locale and split")
    parser.add_argument("--show", type=int, default=5, help="misses / false hits to print per kind")
    parser.add_argument("--no-speed", action="store_true", help="skip the throughput runs")
    parser.add_argument("--arabic-writer", choices=ARABIC_WRITERS, default="v1",
                        help="how script_arabic queries are written (see to_arabic); v1 for published figures")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    un_path = DATA / "un" / "UN_consolidated.xml"
    if not un_path.is_file():
        print(f"skipped: shared sanctions data not found at {DATA}", file=sys.stderr)
        return 0
    un = load_list_path("un-xml", un_path)
    scripts = original_scripts(un_path)
    script_only = ListData("un-script", un.list_date, un.sha256, tuple(
        Entity(e.id, tuple(scripts[e.id]), e.type, e.countries, e.birth_years, e.programme)
        for e in un.entities if e.id in scripts
    ))
    screeners = {"full": Screener([un], cache_size=0), "script": Screener([script_only], cache_size=0)}
    by_id = {e.id: e for e in un.entities}
    listed = {k for e in un.entities for n in (*e.names, *e.weak_names) for k in _norm_set(n)}
    halves = split_entities(un, args.seed)
    results: dict[str, object] = {"seed": args.seed, "entities": un.entity_count,
                                  "review_threshold": screeners["full"].review_threshold}
    all_texts: list[str] = []
    for split in SPLITS if args.split == "both" else (args.split,):
        pos = positives(halves[split], scripts, split, args.seed, args.per_kind, args.arabic_writer)
        neg, dropped = negatives(split, args.seed, args.per_locale, listed)
        result = evaluate([*pos, *neg], screeners, by_id, args.show)
        result["negatives_dropped_as_listed"] = dropped
        results[split] = result
        all_texts += [q.text for q in (*pos, *neg) if q.index == "full"]
    if not args.no_speed:
        distinct = list(dict.fromkeys(all_texts))
        results["throughput"] = throughput(distinct, lambda: Screener([un], cache_size=0))
    if args.json:
        print(orjson.dumps(results, option=orjson.OPT_INDENT_2).decode())
        return 0
    for split in SPLITS:
        block = results.get(split)
        if not isinstance(block, dict):
            continue
        print(f"== {split}: positives={block['positives']} negatives={block['negatives']} "
              f"(dropped as listed: {block['negatives_dropped_as_listed']})")
        print(f"   recall={block['recall']} FPR={block['fpr']} precision={block['precision']} F1={block['f1']}")
        for kind, row in block["per_kind"].items():
            label = "FP rate" if kind.startswith("neg_") else "recall"
            other = f" (other consistent entity: {row['other_entity']})" if row["other_entity"] else ""
            print(f"   {kind:<22} n={row['n']:<5} {label}={row['rate']:.4f}{other}")
            for ex in row["examples"]:
                print(f"      {ex}")
    if "throughput" in results:
        print(f"throughput (index loaded, caches cleared, CPU time): {results['throughput']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
