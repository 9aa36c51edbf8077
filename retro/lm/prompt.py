"""Prompt templates: how a question becomes the text a language model reads before the answer."""

from __future__ import annotations

from typing import NamedTuple

from retro.errors import RetroError

__all__ = ["PromptTemplate", "QUESTION_SLOT", "DEFAULT_TEMPLATE"]

QUESTION_SLOT = "{question}"
DEFAULT_TEMPLATE = "Question: {question}\nAnswer:"


class PromptTemplate(NamedTuple):
    """A prompt with one ``{question}`` slot (other braces are literal text).

    Whitespace at the end of the template separates the prompt from the answer, and a separating space belongs to
    the answer: ``"Q: {question}\\nA: "`` reads the prompt ``"Q: ...\\nA:"`` and scores the answer ``"Paris"`` as
    the tokens of ``" Paris"`` (:attr:`separator`), the way the model saw such text in training (a byte-level BPE
    has one token for ``" Paris"`` but none for a lone trailing space followed by ``"Paris"``).

    Example:
        >>> PromptTemplate("Q: {question}\\nA: ").render("2+2?")
        'Q: 2+2?\\nA:'
        >>> PromptTemplate("Q: {question}\\nA: ").separator
        ' '
    """

    text: str = DEFAULT_TEMPLATE

    @staticmethod
    def of(template: str | PromptTemplate) -> PromptTemplate:
        """A checked template: one without the ``{question}`` slot is a one-line error."""
        text = template.text if isinstance(template, PromptTemplate) else template
        if not isinstance(text, str) or QUESTION_SLOT not in text:
            raise RetroError(f"prompt template {text!r} has no {QUESTION_SLOT} slot for the question")
        return PromptTemplate(text)

    @property
    def separator(self) -> str:
        """The trailing whitespace of the template: scored as the start of every answer."""
        return self.text[len(self.text.rstrip()) :]

    def render(self, question: str) -> str:
        """The prompt text for ``question`` (without :attr:`separator`)."""
        return self.text.rstrip().replace(QUESTION_SLOT, question)
