"""Anchor classes: each rule of section 10, the order they are tried in, and the shipped phrases."""

from __future__ import annotations

import pytest

from crawler.core.anchors import AnchorClass, Classifier, classify, generic_phrases
from crawler.core.history import normalize_anchor

TARGET = "https://www.acme-store.co.uk/shoes"


def kind(
    text: str,
    *,
    image: bool = False,
    expected: str | None = None,
    target: str = TARGET,
    brands: tuple[str, ...] = (),
) -> AnchorClass:
    return classify(text, image=image, expected_anchor=expected, target_url=target, brand_terms=brands)


class TestNormalised:
    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("  Running\u00a0\tSHOES!! ", "running shoes"),
            ("\uff32\uff35\uff2e\uff2e\uff29\uff2e\uff27\u3000Shoes", "running shoes"),  # full width
            ("Stra\u00dfe", "STRASSE"),
            ("best\u2014shoes\u20262024", "Best shoes 2024"),
            ("\u00abplus d\u2019infos\u00bb", "plus d infos"),
        ],
    )
    def test_compared_as_expected_anchors_are(self, text: str, expected: str) -> None:
        """Texts are compared after section 1's normalisation: NFKC, case folding, punctuation as spaces."""
        assert kind(text, expected=expected) is AnchorClass.EXACT


class TestRules:
    @pytest.mark.parametrize("text", ["", "   ", "!!!", "\u00a0—\u00a0"])
    def test_empty(self, text: str) -> None:
        """A text with nothing left after normalising is empty."""
        assert kind(text) is AnchorClass.EMPTY

    def test_image(self) -> None:
        """A link whose text is an image's alt is an image link."""
        assert kind("Our partner", image=True) is AnchorClass.IMAGE

    def test_exact(self) -> None:
        """A text equal to the expected anchor after normalising is exact."""
        assert kind("Running-Shoes!", expected="running shoes") is AnchorClass.EXACT

    @pytest.mark.parametrize(
        "text",
        [
            "https://example.org/page?x=1",
            "HTTP://EXAMPLE.ORG",
            "example.org",
            "  www.example.org/shoes  ",
            "bücher.de",
            "see acme-store.co.uk today",
            "Deals at WWW.ACME-STORE.CO.UK",
        ],
    )
    def test_naked_url(self, text: str) -> None:
        """A URL, a host name, or a text holding the target's host is a naked URL."""
        assert kind(text) is AnchorClass.NAKED_URL

    def test_naked_url_in_unicode_spelling(self) -> None:
        """A text holding an IDNA target host in its Unicode spelling is a naked URL."""
        assert kind("Alles bei bücher.de kaufen", target="https://xn--bcher-kva.de/") is AnchorClass.NAKED_URL

    @pytest.mark.parametrize("text", ["e.g. shoes", "3.5 stars", "ftp://example.org", "version 2.0"])
    def test_not_naked_url(self, text: str) -> None:
        """Abbreviations, numbers and other schemes are not naked URLs."""
        assert kind(text) is AnchorClass.OTHER

    @pytest.mark.parametrize("text", ["Acme Store", "the ACME-store sale", "acme store\u2019s shoes"])
    def test_branded_by_registrable_domain(self, text: str) -> None:
        """The first label of the target's registrable domain, as whole words, makes a text branded."""
        assert kind(text) is AnchorClass.BRANDED

    @pytest.mark.parametrize("text", ["acmestore", "acme stores", "acme"])
    def test_brand_only_as_whole_words(self, text: str) -> None:
        """A brand inside a longer word, or only part of it, is not branded."""
        assert kind(text) is AnchorClass.OTHER

    def test_branded_by_brand_term(self) -> None:
        """A term of `brand_terms`, normalised the same way, makes a text branded."""
        assert kind("Shoes by ZAPPO'S", brands=("Zappo\u2019s",)) is AnchorClass.BRANDED

    def test_branded_idna_label(self) -> None:
        """An IDNA registrable domain's first label is compared in Unicode."""
        assert kind("Bücher online", target="https://shop.xn--bcher-kva.de/") is AnchorClass.BRANDED

    def test_partial(self) -> None:
        """A text holding every word of the expected anchor, in any order, is partial."""
        assert kind("shoes for running, cheap", expected="Running shoes") is AnchorClass.PARTIAL

    def test_not_partial_when_a_word_is_missing(self) -> None:
        """A text lacking one word of the expected anchor is not partial."""
        assert kind("cheap running gear", expected="running shoes") is AnchorClass.OTHER

    @pytest.mark.parametrize(
        "text", ["Click here", "Hier klicken", "Cliquez ici", "Haga clic aquí", "Lire la suite"]
    )
    def test_generic(self, text: str) -> None:
        """A shipped phrase, in any of the four languages, is generic."""
        assert kind(text) is AnchorClass.GENERIC

    def test_generic_only_as_the_whole_text(self) -> None:
        """A text that merely contains a generic phrase is not generic."""
        assert kind("click here for running shoes") is AnchorClass.OTHER

    def test_other(self) -> None:
        """A text no rule holds for is other."""
        assert kind("the best trail gear of the year") is AnchorClass.OTHER


class TestOrder:
    @pytest.mark.parametrize(
        ("text", "options", "expected"),
        [
            ("", {"image": True}, AnchorClass.EMPTY),
            ("running shoes", {"image": True, "expected": "running shoes"}, AnchorClass.IMAGE),
            ("acme-store.co.uk", {"expected": "acme-store.co.uk"}, AnchorClass.EXACT),
            ("acme store at acme-store.co.uk", {}, AnchorClass.NAKED_URL),
            ("Acme Store running shoes", {"expected": "running shoes"}, AnchorClass.BRANDED),
            ("read more", {"expected": "more"}, AnchorClass.PARTIAL),
        ],
    )
    def test_first_rule_that_holds_wins(
        self, text: str, options: dict[str, object], expected: AnchorClass
    ) -> None:
        """Where two rules hold, the earlier one in section 10's list gives the class."""
        assert kind(text, **options) is expected  # type: ignore[arg-type]

    @pytest.mark.parametrize("expected", [None, "", "  ", "?!"])
    def test_no_expected_anchor_is_never_exact_or_partial(self, expected: str | None) -> None:
        """Without an expected anchor (or one that normalises to nothing), exact and partial never hold."""
        assert kind("running shoes", expected=expected) is AnchorClass.OTHER
        assert kind("", expected=expected) is AnchorClass.EMPTY


class TestShippedList:
    def test_at_least_forty_phrases_in_four_languages(self) -> None:
        """The generic list ships at least 40 phrases, with English, German, French and Spanish ones."""
        phrases = generic_phrases()
        assert len(phrases) >= 40
        assert {"click here", "weiterlesen", "en savoir plus", "leer más"} <= phrases

    def test_phrases_are_normalised(self) -> None:
        """Each shipped phrase is stored normalised, so apostrophes and case never block a match."""
        assert all(phrase == normalize_anchor(phrase) and phrase for phrase in generic_phrases())
        assert kind("Plus d\u2019infos") is AnchorClass.GENERIC

    def test_classifier_agrees_with_function(self) -> None:
        """A `Classifier` built once gives the same classes as `classify`."""
        classifier = Classifier(["Zappo"])
        for text in ("zappo", "click here", "acme store", "x.org"):
            assert classifier.classify(text, image=False, expected_anchor=None, target_url=TARGET) is kind(
                text, brands=("Zappo",)
            )
