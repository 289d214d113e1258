import numpy as np
from trends_testing import make_data

from fashionlens.trends.social import activity, caption_sentiment, hashtags, top_authors


def _posts():
    posts, rng = [], np.random.default_rng(0)
    for m in range(1, 13):
        n = 60 if m == 7 else 10  # July: activity peak
        for i in range(n):
            neg = m == 11  # November: everybody complains
            posts.append({"post_id": f"{m}-{i}", "timestamp": f"2024-{m:02d}-{1 + i % 27:02d}",
                          "author": "star" if i == 0 else f"u{rng.integers(0, 5)}",
                          "likes": 500 if i == 0 else 5, "comments": 1,
                          "hashtags": "#ootd #Denim" if i % 2 else "#ootd,#summer;#ootd",
                          "caption": "I hate this awful coat, terrible" if neg else "love this, great day"})
    return make_data(posts, [])


def test_activity_peak():
    a = activity(_posts(), "month")
    assert a.loc[a["peak"], "period"].dt.month.tolist() == [7]
    assert a["posts"].sum() == 170


def test_top_authors():
    by_act, by_eng = top_authors(_posts(), n=3)
    assert by_eng.iloc[0]["author"] == "star" and by_eng.iloc[0]["posts"] == 12
    assert len(by_act) == 3 and by_act["posts"].is_monotonic_decreasing


def test_hashtags_frequency_and_cooccurrence():
    freq, co = hashtags(_posts())
    f = dict(zip(freq["hashtag"], freq["posts"]))
    assert f["ootd"] == 170  # counted once per post even when repeated
    assert f["denim"] + f["summer"] == 170
    pairs = {(a, b): n for a, b, n in co.itertuples(index=False)}
    assert pairs[("ootd", "denim")] == f["denim"] or pairs[("denim", "ootd")] == f["denim"]
    assert ("denim", "summer") not in pairs and ("summer", "denim") not in pairs


def test_caption_sentiment_negative_peak():
    s = caption_sentiment(_posts(), "month")
    assert s.loc[s["negative_peak"], "period"].dt.month.tolist() == [11]
    assert (s["scored"] == s["captions"]).all()
    assert s.loc[s["period"].dt.month == 11, "mean_compound"].iloc[0] < -0.5
    sample = caption_sentiment(_posts(), "month", max_captions=1)
    assert sample["scored"].sum() < sample["captions"].sum()


def test_empty_metadata_columns():
    d = make_data([{"post_id": "1", "timestamp": "2024-01-01"}], [])
    assert hashtags(d)[0].empty and caption_sentiment(d).empty and top_authors(d)[0].empty
