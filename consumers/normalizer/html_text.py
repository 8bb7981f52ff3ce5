"""HTML to plain text for HTML-only e-mails (stdlib parser; no rendering)."""

from __future__ import annotations

from html.parser import HTMLParser

_BLOCK = {
    "p", "div", "br", "tr", "li", "ul", "ol", "table", "h1", "h2", "h3", "h4", "h5", "h6",
    "section", "article", "header", "footer", "hr", "pre",
}
_SKIP = {"script", "style", "head", "title", "template", "noscript"}
# Mail clients wrap the quoted original in these; the reply stripper would not see '>' marks.
_QUOTE_CLASSES = ("gmail_quote", "yahoo_quoted", "moz-cite-prefix", "qmbox_quoted", "divRplyFwdMsg")


class _TextExtractor(HTMLParser):
    def __init__(self, drop_quotes: bool) -> None:
        super().__init__(convert_charrefs=True)
        self.drop_quotes = drop_quotes
        self.parts: list[str] = []
        self._skip_depth = 0
        self._quote_stack: list[str] = []
        self.quote_removed = False

    def _is_quote(self, tag: str, attrs: list[tuple[str, str | None]]) -> bool:
        if not self.drop_quotes:
            return False
        if tag == "blockquote":
            return True
        values = " ".join(v or "" for k, v in attrs if k in ("class", "id"))
        return any(name in values for name in _QUOTE_CLASSES)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self._quote_stack:
            if tag == self._quote_stack[0]:
                self._quote_stack.append(tag)
            return
        if self._is_quote(tag, attrs):
            self._quote_stack.append(tag)
            self.quote_removed = True
            return
        if tag in _SKIP:
            self._skip_depth += 1
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if not self._quote_stack and tag in _BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if self._quote_stack:
            if tag == self._quote_stack[0]:
                self._quote_stack.pop()
            return
        if tag in _SKIP:
            self._skip_depth = max(0, self._skip_depth - 1)
        elif tag in _BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if not self._skip_depth and not self._quote_stack:
            self.parts.append(data)


def html_to_text(html: str, drop_quotes: bool = True) -> tuple[str, bool]:
    """The visible text of an HTML body, quoted blocks left out; returns (text, quote_removed)."""
    parser = _TextExtractor(drop_quotes)
    parser.feed(html)
    parser.close()
    lines = [" ".join(line.split()) for line in "".join(parser.parts).split("\n")]
    return "\n".join(line for line in lines if line), parser.quote_removed


def html_body_text(html: str) -> tuple[str, bool]:
    """Like ``html_to_text``, but a body that is nothing but a quote keeps the quote (never empty)."""
    text, quote_removed = html_to_text(html)
    if not text.strip():
        return html_to_text(html, drop_quotes=False)[0], False
    return text, quote_removed
