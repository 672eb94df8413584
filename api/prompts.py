"""Prompt templates. A run stores the exact prompt rendered for each problem."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from boundary.api.errors import ConfigError, UnknownName
from boundary.api.types import Kind, Problem

ChatRenderer = Callable[[Sequence[Mapping[str, str]]], str]

BOXED_INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{}."

CODE_INSTRUCTION = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:"
)
"""EvalPlus's instruction for chat models (its ``instruction_prefix``)."""


def code_task(problem: Problem) -> str:
    """A code problem as a task statement: MBPP's text with its tests (the test names the
    function to write), else the benchmark's prompt as is."""
    tests = problem.record.get("test_list") if problem.record else None
    if tests:
        return f"{problem.question.strip()} Your code should pass these tests:\n\n" + "\n".join(map(str, tests)) + "\n"
    return problem.question


def mbpp_prompt(problem: Problem) -> str:
    """MBPP's own prompt (Austin et al. 2021), zero-shot: the task, its tests, then [BEGIN]."""
    return f"You are an expert Python programmer, and here is your task: {code_task(problem)}[BEGIN]\n"


def code_chat_message(problem: Problem) -> str:
    return f"{CODE_INSTRUCTION}\n```\n{code_task(problem).strip()}\n```\n"


@dataclass(frozen=True)
class Template:
    name: str
    kinds: tuple[Kind, ...]
    uses_chat_template: bool
    description: str
    text: str = ""
    body: Callable[[Problem], str] | None = None
    """Builds the prompt (or the chat message) from the whole problem, instead of ``text``."""

    def render(self, problem: Problem, chat: ChatRenderer | None = None) -> str:
        if self.uses_chat_template:
            if chat is None:
                raise ConfigError(
                    f"template '{self.name}' needs the model's chat template, which this engine cannot render"
                )
            content = self.body(problem) if self.body else f"{problem.question}\n{BOXED_INSTRUCTION}"
            return chat([{"role": "user", "content": content}])
        if self.body is not None:
            return self.body(problem)
        return self.text.replace("{question}", problem.question)


TEMPLATES: dict[str, Template] = {
    t.name: t
    for t in (
        Template(
            "qwen-boxed",
            ("math",),
            False,
            "the SimpleRL-Zoo / Yue et al. prompt: Qwen chat markup, step-by-step, answer in \\boxed{}",
            "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
            "<|im_start|>user\n{question}\n" + BOXED_INSTRUCTION + "<|im_end|>\n"
            "<|im_start|>assistant\n",
        ),
        Template(
            "boxed",
            ("math",),
            False,
            "plain text: the question, then 'put your final answer within \\boxed{}' (for base models)",
            "{question}\n" + BOXED_INSTRUCTION + "\n",
        ),
        Template(
            "chat",
            ("math",),
            True,
            "the model's own chat template around the question and the \\boxed{} instruction",
        ),
        Template(
            "code-complete",
            ("code",),
            False,
            "the benchmark's prompt as is, for the model to continue (HumanEval style)",
            "{question}",
        ),
        Template(
            "mbpp",
            ("code",),
            False,
            "MBPP's prompt: the task and the tests the function must pass, then [BEGIN]",
            body=mbpp_prompt,
        ),
        Template(
            "code-chat",
            ("code",),
            True,
            "the model's chat template around EvalPlus's instruction and the task (tests included for MBPP)",
            body=code_chat_message,
        ),
    )
}

DEFAULT_FOR_KIND: dict[Kind, str] = {"math": "qwen-boxed", "code": "code-complete"}

DEFAULT_FOR_BENCHMARK: dict[str, str] = {"mbpp": "mbpp"}
"""Benchmarks whose prompt alone does not say what to write: MBPP's text names no function."""


def default_template(benchmark: str, kind: Kind) -> str:
    """The template a run uses when none is given."""
    return DEFAULT_FOR_BENCHMARK.get(benchmark, DEFAULT_FOR_KIND[kind])


def get_template(name: str, kind: Kind) -> Template:
    template = TEMPLATES.get(name)
    if template is None:
        raise UnknownName("prompt template", name, list(TEMPLATES))
    if kind not in template.kinds:
        raise ConfigError(f"template '{name}' is for {'/'.join(template.kinds)} benchmarks, not {kind}")
    return template
