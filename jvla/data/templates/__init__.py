"""Question templates as data, and the small generator that fills them.

``knowledge.yaml`` holds the Stage I templates (:mod:`jvla.data.knowledge`), ``vqa.yaml`` the
Stage II VQA templates (:mod:`jvla.data.vision`). Those modules walk their source (a KB, a frame
annotation) and yield *facts*: dicts of fields with a ``kind``. :func:`expand` fills, for every
fact in that order, every template that names the fact's kind, in the file's order. A template::

    - id: mobs.health            # unique in its file
      category: mobs             # one of the generator module's categories
      facts: [mob]               # the fact kinds it applies to
      when: hp                   # optional: skip the facts whose field is empty (None, 0, "", ())
      questions:                 # paraphrases
        - How many health points does {a_mob} have?
      answer: "{hp:g} health points."
      match: number              # the reference's match rule (jvla.data.reference)

Texts are :meth:`str.format` templates over the fact's fields, where a list or tuple renders as
``a, b and c`` and the conversion ``!c`` applies :meth:`str.capitalize` (``{a_tool!c}``). With
``case: FIELD`` the answer is a mapping from that field's value to the text. The reference is
``{"match": ...}`` plus ``keywords`` (``keywords: FIELD``: the field's value as a list of strings)
and ``answers``: the answer's own leading yes/no for ``match: yesno``, else the field named by
``answers: FIELD``.
"""

from __future__ import annotations

import functools
import re
import string
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

MATCHES = ("keywords", "number", "exact", "yesno")
_REQUIRED = {"id", "category", "facts", "questions", "answer", "match"}
_OPTIONAL = {"when", "case", "keywords", "answers"}
_YESNO = re.compile(r"(yes|no)\b", re.IGNORECASE)


def and_list(names: Iterable[str]) -> str:
    """``a``, ``a and b``, ``a, b and c``."""
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


class _Formatter(string.Formatter):
    def convert_field(self, value: Any, conversion: str | None) -> Any:
        if isinstance(value, list | tuple):
            value = and_list(value)
        return value.capitalize() if conversion == "c" else super().convert_field(value, conversion)


_FMT = _Formatter()


def _strings(value: Any) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list | tuple) else [str(value)]


@dataclass(frozen=True, eq=False)
class Template:
    id: str
    category: str
    facts: tuple[str, ...]
    questions: tuple[str, ...]
    answer: str | Mapping[str, str]
    match: str
    when: str | None = None
    case: str | None = None
    keywords: str | None = None
    answers: str | None = None

    def texts(self) -> list[str]:
        """The questions and the answer texts (every case's)."""
        return [*self.questions, *(self.answer.values() if self.case else [self.answer])]

    def fields(self) -> set[str]:
        """The names of the fact fields this template reads."""
        used = {name for text in self.texts() for _, name, _, _ in _FMT.parse(text) if name}
        return used | {f for f in (self.when, self.case, self.keywords, self.answers) if f}

    def fill(self, fact: Mapping[str, Any]) -> QA:
        answer = _FMT.format(self.answer[fact[self.case]] if self.case else self.answer, **fact)
        ref: dict[str, Any] = {"match": self.match}
        if self.keywords:
            ref["keywords"] = _strings(fact[self.keywords])
        if self.match == "yesno":
            if not (m := _YESNO.match(answer)):
                raise ValueError(f"template {self.id}: a yesno answer must start with yes or no: {answer!r}")
            ref["answers"] = [m.group(1).lower()]
        elif self.answers:
            ref["answers"] = _strings(fact[self.answers])
        return QA(self, fact, tuple(_FMT.format(q, **fact) for q in self.questions), answer, ref)


class QA(NamedTuple):
    """A template filled with a fact: the paraphrased questions, the answer and the reference."""

    template: Template
    fact: Mapping[str, Any]
    questions: tuple[str, ...]
    answer: str
    ref: dict[str, Any]


def _template(d: Any, where: str) -> Template:
    def bad(why: str) -> ValueError:
        name = d.get("id", "?") if isinstance(d, Mapping) else "?"
        return ValueError(f"{where}: template {name!r}: {why}")

    if not isinstance(d, Mapping):
        raise bad("expected a mapping")
    if unknown := set(d) - _REQUIRED - _OPTIONAL:
        raise bad(f"unknown keys {sorted(unknown)}")
    if missing := _REQUIRED - set(d):
        raise bad(f"missing keys {sorted(missing)}")
    if d["match"] not in MATCHES:
        raise bad(f"match must be one of {list(MATCHES)}, found {d['match']!r}")
    if not (isinstance(d["facts"], list) and isinstance(d["questions"], list) and d["questions"]):
        raise bad("facts and questions must be non-empty lists")
    if isinstance(d["answer"], Mapping) != bool(d.get("case")):
        raise bad("the answer is a mapping exactly when `case` names the field it is keyed by")
    t = Template(**{**d, "facts": tuple(d["facts"]), "questions": tuple(d["questions"])})
    names = [t.id, t.category, *t.facts, *t.texts(), *(t.answer if t.case else ())]
    names += [f for f in (t.when, t.case, t.keywords, t.answers) if f is not None]
    if not all(isinstance(x, str) and x for x in names):  # YAML reads `yes:` or `no` as booleans
        raise bad("ids, categories, fact kinds, fields, cases, questions and answers must be strings")
    return t


@functools.cache
def load(name: str) -> tuple[Template, ...]:
    """The templates of ``<name>.yaml`` beside this module, checked for shape."""
    import yaml

    path = Path(__file__).with_name(f"{name}.yaml")
    out = tuple(_template(d, path.name) for d in yaml.safe_load(path.read_text()))
    ids = [t.id for t in out]
    if dup := sorted({i for i in ids if ids.count(i) > 1}):
        raise ValueError(f"{path.name}: duplicate template ids {dup}")
    return out


def expand(templates: Iterable[Template], facts: Iterable[Mapping[str, Any]]) -> Iterator[QA]:
    """Every fact in order filled into every template of its kind in file order, but for the
    templates whose ``when`` field is empty for the fact."""
    by_kind: dict[str, list[Template]] = defaultdict(list)
    for t in templates:
        for kind in t.facts:
            by_kind[kind].append(t)
    for fact in facts:
        for t in by_kind[fact["kind"]]:
            if t.when is None or fact[t.when]:
                yield t.fill(fact)
