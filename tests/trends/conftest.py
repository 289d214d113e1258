import pytest
from trends_testing import make_data

from fashionlens.trends.inputs import TrendData


@pytest.fixture
def small_data() -> TrendData:
    posts = [{"post_id": str(i), "timestamp": ts, "place": place}
             for i, (ts, place) in enumerate([("2024-01-03", "paris"), ("2024-01-20", "paris"),
                                              ("2024-01-25", "london"), ("2024-02-02", "london")])]
    labels = [(0, "colours", "red"), (0, "colours", "blue"), (1, "colours", "red"), (2, "colours", "blue"),
              (3, "colours", "blue"), (0, "category", "jeans")]
    return make_data(posts, labels)
