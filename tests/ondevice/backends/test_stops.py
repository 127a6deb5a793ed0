"""Stop strings split across streamed pieces are found, and nothing before them is held back for good."""

from ondevice.backends.stops import StopMatcher


def feed_all(matcher, pieces):
    out, hit = [], False
    for piece in pieces:
        text, hit = matcher.feed(piece)
        out.append(text)
        if hit:
            break
    return "".join(out), hit


def test_stop_split_across_pieces_is_cut_exactly():
    text, hit = feed_all(StopMatcher(["</end>"]), ["Hello wor", "ld</e", "nd> tail"])
    assert (text, hit) == ("Hello world", True)


def test_possible_stop_prefix_is_held_then_released():
    m = StopMatcher(["STOP"])
    assert m.feed("abc ST") == ("abc ", False)
    assert m.feed("ay") == ("STay", False)


def test_earliest_of_several_stops_wins():
    text, hit = feed_all(StopMatcher(["zz", "b"]), ["aab", "zz"])
    assert (text, hit) == ("aa", True)


def test_no_stops_passes_everything_through():
    m = StopMatcher([])
    assert m.feed("abc") == ("abc", False)
    assert m.flush() == ""
