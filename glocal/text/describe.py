"""CuPL-style class descriptions from an LLM: prompts as data, answers parsed and validated.

The LLM is any callable ``chat(messages) -> str`` (``glocal.text.llm.openai_chat`` talks to an
OpenAI-compatible server); it raises ``Transient`` for failures worth retrying (timeouts, 429,
5xx, malformed answers) and ``Fatal`` for ones that would fail every class (bad key, unknown
model). One class is the unit of work: it either gets its sentences or is reported as failed.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from glocal.text.files import chatter

PROMPT_SETS = Path(__file__).with_name("prompt_sets")


class Transient(Exception):
    """A failure worth retrying: timeout, rate limit, server error, malformed answer."""


class Fatal(Exception):
    """A failure every class would hit (rejected key, unknown model): stop the stage."""


@dataclass(frozen=True)
class DescribeConfig:
    prompt_set: str = "cupl-v1"  # a name in glocal/prompt_sets/ or a path to such a JSON file
    sentences_per_prompt: int = 3  # k sentences asked for in each answer
    max_sentences: int = 15  # M kept per class: the first M valid ones, in prompt order
    max_chars: int = 250  # longer lines are dropped (CLIP's text context is 77 tokens)
    temperature: float = 0.99  # CuPL sampled its descriptions at 0.99
    max_tokens: int = 256
    timeout_s: float = 60.0  # per request
    max_attempts: int = 4  # per (class, prompt); only Transient failures are retried
    backoff_s: float = 1.0  # wait backoff_s * 2**attempt before the next attempt


@dataclass(frozen=True)
class PromptSet:
    name: str
    system: str  # may use {k}
    prompts: tuple[str, ...]  # may use {article} and {classname}
    source: str = ""


def load_prompt_set(name_or_path: str) -> PromptSet:
    path = Path(name_or_path)
    if not path.suffix:
        path = PROMPT_SETS / f"{name_or_path}.json"
    if not path.exists():
        known = sorted(p.stem for p in PROMPT_SETS.glob("*.json"))
        raise ValueError(f"unknown prompt set {name_or_path!r}: give a JSON file or one of {known}")
    data = json.loads(path.read_text(encoding="utf-8"))
    prompts = data.get("prompts")
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) and "{classname}" in p for p in prompts):
        raise ValueError(f"{path}: 'prompts' must be a non-empty list of strings, each containing {{classname}}")
    return PromptSet(data.get("name", path.stem), data.get("system", ""), tuple(prompts), data.get("source", ""))


def article(classname: str) -> str:
    return "an" if classname[:1].lower() in "aeiou" else "a"


def prompt_messages(prompt_set: PromptSet, classname: str, k: int) -> list[list[dict]]:
    """One chat conversation per prompt of the set."""
    system = prompt_set.system.format(k=k)
    out = []
    for prompt in prompt_set.prompts:
        user = prompt.format(article=article(classname), classname=classname)
        out.append(([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}])
    return out


_BULLET = re.compile(r"^\s*(?:[-*\u2022]|\d+[.)]|\(\d+\))\s*")


def _identity(sentence: str) -> str:
    return " ".join(sentence.casefold().rstrip(".!").split())


def parse_answer(text: str, seen: set[str], max_chars: int) -> tuple[list[str], Counter]:
    """Valid sentences of one answer (one per line; bullets, numbering and quotes stripped) and
    counts of what was dropped: ``empty``, ``duplicate`` (also across answers, via ``seen``),
    ``too_long``, ``refusal`` and ``preamble`` (an LLM's refusal or its chatter around the answer)."""
    kept, dropped = [], Counter()
    for line in text.strip().splitlines() or [""]:
        sentence = _BULLET.sub("", line).strip().strip('"').strip()
        if not sentence:
            dropped["empty"] += 1
        elif len(sentence) > max_chars:
            dropped["too_long"] += 1
        elif kind := chatter(sentence):
            dropped[kind] += 1
        elif _identity(sentence) in seen:
            dropped["duplicate"] += 1
        else:
            seen.add(_identity(sentence))
            kept.append(sentence)
    return kept, dropped


@dataclass
class ClassResult:
    class_index: int
    classname: str
    sentences: list[str] = field(default_factory=list)
    dropped: Counter = field(default_factory=Counter)
    attempts: int = 0
    error: str | None = None


def describe_class(chat: Callable[[list[dict]], str], prompt_set: PromptSet, class_index: int, classname: str,
                   cfg: DescribeConfig, sleep: Callable[[float], None] = time.sleep) -> ClassResult:
    """Ask every prompt of the set about one class; keep the first ``cfg.max_sentences`` valid
    sentences. A prompt whose attempts are all Transient failures fails the whole class."""
    result = ClassResult(class_index, classname)
    seen: set[str] = set()
    for messages in prompt_messages(prompt_set, classname, cfg.sentences_per_prompt):
        for attempt in range(cfg.max_attempts):
            result.attempts += 1
            try:
                answer = chat(messages)
                kept, dropped = parse_answer(answer, seen, cfg.max_chars)
                result.dropped.update(dropped)
                if not kept and not dropped["duplicate"]:
                    # (an answer that only repeats earlier ones is valid, just not new)
                    raise Transient("malformed answer: no usable sentence")
                result.sentences += kept
                break
            except Transient as exc:
                if attempt + 1 == cfg.max_attempts:
                    result.error = f"{exc} (after {cfg.max_attempts} attempts, prompt {messages[-1]['content']!r})"
                    result.sentences = []
                    return result
                sleep(cfg.backoff_s * 2**attempt)
    result.sentences = result.sentences[: cfg.max_sentences]
    return result
