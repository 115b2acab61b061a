"""Tests for the synthetic source generator (tiny scale, no Spark).

The files are generated once per module; every check re-derives what it asserts from the
files themselves (pandas, json), never from the generator's internals, so a generator that
miscounts, goes flat or breaks an invariant fails here.
"""

from __future__ import annotations

import hashlib
import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from lakehouse.sources.catalogue import EXTRA_CONTENT_FIELDS
from lakehouse.sources.common import ScaleSpec
from lakehouse.sources.generate import SCALES, generate
from lakehouse.sources.schema import CONTENT_FIELDS, RATINGS_TABLE, USERS_TABLE, VIEWING_SESSIONS_TABLE

SEED = 42
OTHER_SEED = 43
DEFECT_RATE = 0.01
START = datetime(2026, 1, 1, tzinfo=UTC)
DATA_FILES = ("users.csv", "content.jsonl", "viewing_sessions.csv", "ratings.csv")
TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
DATE_FORMAT = "%Y-%m-%d"
SECONDS_PER_DAY = 86_400
PLANS = {"basic", "standard", "premium"}
PRICES = {
    ("basic", "monthly"): "7.99",
    ("basic", "annual"): "6.66",
    ("standard", "monthly"): "12.99",
    ("standard", "annual"): "10.83",
    ("premium", "monthly"): "17.99",
    ("premium", "annual"): "14.99",
}
OPTIONAL_CONTENT_FIELDS = ("director", "cast", "maturity_rating")
EVENING_HOURS = (19, 20, 21, 22)
NIGHT_HOURS = (2, 3, 4, 5)


# --------------------------------------------------------------------------- fixtures


def _read_csv(path: Path) -> pd.DataFrame:
    """Every column as text; empty fields become NaN."""
    return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])


def _timestamps(values: pd.Series) -> pd.Series:
    return pd.to_datetime(values, format=TIMESTAMP_FORMAT, errors="coerce", utc=True)


class Generated:
    """One generated directory, loaded."""

    def __init__(self, directory: Path, manifest: dict[str, Any]) -> None:
        self.directory = directory
        self.manifest = manifest
        self.users = _read_csv(directory / "users.csv")
        self.sessions = _read_csv(directory / "viewing_sessions.csv")
        self.ratings = _read_csv(directory / "ratings.csv")
        lines = (directory / "content.jsonl").read_text(encoding="utf-8").splitlines()
        self.documents = [json.loads(line) for line in lines]
        self.content_ids = {document["_id"] for document in self.documents}
        self.user_ids = set(self.users["user_id"].dropna())

    def defects(self, table: str, kind: str) -> dict[str, Any]:
        return self.manifest["defects"][table][kind]

    def defect_keys(self, table: str) -> set[Any]:
        """Every key listed for any defect kind of ``table`` (ratings keys as tuples)."""
        keys: set[Any] = set()
        for entry in self.manifest["defects"][table].values():
            keys.update(tuple(key) if isinstance(key, list) else key for key in entry["keys"])
        return keys

    def clean_sessions(self) -> pd.DataFrame:
        """Sessions with a key and no defect of any kind (duplicate pairs included)."""
        listed = {
            str(key)
            for kind, entry in self.manifest["defects"]["viewing_sessions"].items()
            if kind != "duplicate_key"
            for key in entry["keys"]
        }
        sessions = self.sessions.dropna(subset=["session_id"])
        return sessions[~sessions["session_id"].isin(listed)]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    directory = tmp_path_factory.mktemp("tiny")
    messages: list[str] = []
    manifest = generate(directory, scale="tiny", seed=SEED, defect_rate=DEFECT_RATE, progress=messages.append)
    assert messages, "progress callback never called"
    return Generated(directory, manifest)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --------------------------------------------------------------------------- determinism, sizes


def test_same_seed_gives_identical_files_and_another_seed_differs(tiny: Generated, tmp_path: Path) -> None:
    again = generate(tmp_path / "again", scale="tiny", seed=SEED, defect_rate=DEFECT_RATE)
    other = generate(tmp_path / "other", scale="tiny", seed=OTHER_SEED, defect_rate=DEFECT_RATE)
    for name in (*DATA_FILES, "manifest.json"):
        assert _sha256(tmp_path / "again" / name) == _sha256(tiny.directory / name), name
    for name in DATA_FILES:
        assert _sha256(tmp_path / "other" / name) != _sha256(tiny.directory / name), name
        assert again["files"][name]["sha256"] == _sha256(tiny.directory / name)
    assert other["seed"] == OTHER_SEED


def test_manifest_describes_the_files(tiny: Generated) -> None:
    on_disk = json.loads((tiny.directory / "manifest.json").read_text(encoding="utf-8"))
    assert on_disk == tiny.manifest
    assert tiny.manifest["start"] == "2026-01-01T00:00:00Z"
    assert tiny.manifest["end"] == "2026-04-01T00:00:00Z"
    rows = {
        "users.csv": len(tiny.users),
        "viewing_sessions.csv": len(tiny.sessions),
        "ratings.csv": len(tiny.ratings),
        "content.jsonl": len(tiny.documents),
    }
    for name, count in rows.items():
        assert tiny.manifest["files"][name]["rows"] == count, name
        assert tiny.manifest["files"][name]["sha256"] == _sha256(tiny.directory / name)
    for table, kinds in tiny.manifest["defects"].items():
        for kind in kinds:
            assert kind in tiny.manifest["defect_kinds_doc"], (table, kind)
            assert kind in tiny.manifest["defect_treatment"], (table, kind)
    assert not list(tiny.directory.glob("*.partial"))


def test_tiny_row_counts_within_documented_band(tiny: Generated) -> None:
    spec: ScaleSpec = SCALES["tiny"]
    assert spec.users <= len(tiny.users) <= spec.users * 1.05
    assert len(tiny.documents) == spec.titles
    assert spec.sessions <= len(tiny.sessions) <= spec.sessions * 1.05
    assert spec.ratings * 0.9 <= len(tiny.ratings) <= spec.ratings * 1.05


def test_columns_follow_the_source_schema(tiny: Generated) -> None:
    assert list(tiny.users.columns) == list(USERS_TABLE.column_names)
    assert list(tiny.sessions.columns) == list(VIEWING_SESSIONS_TABLE.column_names)
    assert list(tiny.ratings.columns) == list(RATINGS_TABLE.column_names)
    assert {field for document in tiny.documents for field in document} <= {*CONTENT_FIELDS, *EXTRA_CONTENT_FIELDS}
    assert set(tiny.sessions["completed"]) == {"true", "false"}
    assert _timestamps(tiny.users["updated_at"]).notna().all()
    assert tiny.users["email"].dropna().str.fullmatch(r"[a-z0-9.]+@[a-z.]+").all()


# --------------------------------------------------------------------------- defects


def _assert_defect(generated: Generated, table: str, kind: str, found: int, keys=None) -> None:
    entry = generated.defects(table, kind)
    assert found > 0, f"{table}.{kind}: no defect in the files"
    assert entry["count"] == found, f"{table}.{kind}: manifest {entry['count']}, files {found}"
    if keys is not None:
        listed = [tuple(k) if isinstance(k, list) else k for k in entry["keys"]]
        assert sorted(listed, key=str) == sorted(keys, key=str), f"{table}.{kind} keys"


def test_users_defects_match_manifest(tiny: Generated) -> None:
    users = tiny.users
    keyed = users.dropna(subset=["user_id"])
    birth = pd.to_datetime(users["birth_date"], format=DATE_FORMAT, errors="coerce")
    malformed = users[birth.isna()]
    unknown = users[~users["subscription_plan"].isin(PLANS)]
    duplicated = keyed[keyed["user_id"].duplicated()]
    _assert_defect(tiny, "users", "null_key", int(users["user_id"].isna().sum()))
    _assert_defect(tiny, "users", "duplicate_key", len(duplicated), [int(k) for k in duplicated["user_id"]])
    _assert_defect(
        tiny,
        "users",
        "malformed_birth_date",
        len(malformed),
        [int(k) for k in malformed["user_id"]],
    )
    _assert_defect(tiny, "users", "unknown_plan", len(unknown), [int(k) for k in unknown["user_id"]])


def test_duplicate_user_rows_are_later_versions(tiny: Generated) -> None:
    keyed = tiny.users.dropna(subset=["user_id"])
    versions = keyed[keyed["user_id"].duplicated(keep=False)]
    for _, group in versions.groupby("user_id"):
        first, last = group.iloc[0], group.iloc[-1]
        assert _timestamps(pd.Series([last["updated_at"]]))[0] > _timestamps(pd.Series([first["updated_at"]]))[0]
        assert last["subscription_plan"] != first["subscription_plan"]


def test_sessions_defects_match_manifest(tiny: Generated) -> None:
    sessions = tiny.sessions
    ids = sessions["session_id"]
    watch = pd.to_numeric(sessions["watch_seconds"])
    started = _timestamps(sessions["started_at"])
    ended = _timestamps(sessions["ended_at"])
    keyed = sessions.dropna(subset=["session_id"])

    def keys(mask: pd.Series) -> list[int]:
        return [int(k) for k in ids[mask]]

    orphan_user = ~sessions["user_id"].isin(tiny.user_ids)
    orphan_content = ~sessions["content_id"].isin(tiny.content_ids)
    _assert_defect(tiny, "viewing_sessions", "null_key", int(ids.isna().sum()), [])
    duplicated = keyed["session_id"][keyed["session_id"].duplicated()]
    _assert_defect(tiny, "viewing_sessions", "duplicate_key", len(duplicated), [int(k) for k in duplicated])
    _assert_defect(tiny, "viewing_sessions", "orphan_user_id", int(orphan_user.sum()), keys(orphan_user))
    _assert_defect(
        tiny,
        "viewing_sessions",
        "orphan_content_id",
        int(orphan_content.sum()),
        keys(orphan_content),
    )
    _assert_defect(tiny, "viewing_sessions", "negative_watch_seconds", int((watch < 0).sum()), keys(watch < 0))
    absurd = watch > SECONDS_PER_DAY
    _assert_defect(tiny, "viewing_sessions", "absurd_watch_seconds", int(absurd.sum()), keys(absurd))
    backwards = ended < started
    _assert_defect(tiny, "viewing_sessions", "ended_before_started", int(backwards.sum()), keys(backwards))
    _assert_defect(
        tiny,
        "viewing_sessions",
        "unparseable_started_at",
        int(started.isna().sum()),
        keys(started.isna()),
    )


def test_duplicate_sessions_end_with_the_final_version(tiny: Generated) -> None:
    keyed = tiny.sessions.dropna(subset=["session_id"])
    versions = keyed[keyed["session_id"].duplicated(keep=False)]
    assert len(versions) == 2 * tiny.defects("viewing_sessions", "duplicate_key")["count"]
    for _, group in versions.groupby("session_id"):
        earlier, final = group.iloc[0], group.iloc[1]
        assert final["updated_at"] > earlier["updated_at"]
        assert int(final["watch_seconds"]) > int(earlier["watch_seconds"])
        assert earlier["completed"] == "false"


def test_ratings_defects_match_manifest(tiny: Generated) -> None:
    ratings = tiny.ratings
    rating = pd.to_numeric(ratings["rating"])

    def keys(frame: pd.DataFrame) -> list[tuple[int, str | None]]:
        return [
            (int(user), None if pd.isna(content) else content)
            for user, content in zip(frame["user_id"], frame["content_id"], strict=True)
        ]

    keyed = ratings.dropna(subset=["content_id"])
    duplicated = keyed[keyed.duplicated(subset=["user_id", "content_id"])]
    orphan_user = ratings[~ratings["user_id"].isin(tiny.user_ids)]
    orphan_content = keyed[~keyed["content_id"].isin(tiny.content_ids)]
    out_of_range = ratings[~rating.between(1, 5)]
    null_content = ratings[ratings["content_id"].isna()]
    _assert_defect(tiny, "ratings", "null_key", len(null_content), keys(null_content))
    _assert_defect(tiny, "ratings", "duplicate_key", len(duplicated), keys(duplicated))
    _assert_defect(tiny, "ratings", "orphan_user_id", len(orphan_user), keys(orphan_user))
    _assert_defect(tiny, "ratings", "orphan_content_id", len(orphan_content), keys(orphan_content))
    _assert_defect(tiny, "ratings", "rating_out_of_range", len(out_of_range), keys(out_of_range))
    assert set(rating[rating.between(1, 5)]) == {1, 2, 3, 4, 5}


def _parses(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    try:
        datetime.strptime(value, TIMESTAMP_FORMAT)
    except ValueError:
        return False
    return True


def test_content_defects_match_manifest(tiny: Generated) -> None:
    def matching(predicate) -> list[str]:
        return [document["_id"] for document in tiny.documents if predicate(document)]

    checks = {
        "missing_title": lambda d: "title" not in d,
        "release_year_as_string": lambda d: isinstance(d["release_year"], str),
        "duration_minutes_as_string": lambda d: isinstance(d.get("duration_minutes"), str),
        "unknown_extra_field": lambda d: bool(set(d) - set(CONTENT_FIELDS)),
        "malformed_updated_at": lambda d: not _parses(d["updated_at"]),
        "missing_optional_field": lambda d: any(f not in d for f in OPTIONAL_CONTENT_FIELDS),
    }
    for kind, predicate in checks.items():
        ids = matching(predicate)
        _assert_defect(tiny, "content", kind, len(ids), ids)


def test_quarantined_users_and_titles_leave_no_orphans(tiny: Generated) -> None:
    """Rows bound for quarantine are chosen among users and titles nobody watched."""
    malformed = set(tiny.defects("users", "malformed_birth_date")["keys"])
    watched_by = set(pd.to_numeric(tiny.sessions["user_id"]))
    assert not malformed & watched_by
    quarantined_titles = {
        key
        for kind in ("release_year_as_string", "duration_minutes_as_string", "malformed_updated_at")
        for key in tiny.defects("content", kind)["keys"]
    }
    assert not quarantined_titles & set(tiny.sessions["content_id"])
    assert not quarantined_titles & set(tiny.ratings["content_id"].dropna())


def test_zero_defect_rate_gives_clean_files(tmp_path: Path) -> None:
    manifest = generate(tmp_path, scale="tiny", seed=SEED, defect_rate=0)
    assert all(
        entry["count"] == 0 and entry["keys"] == []
        for kinds in manifest["defects"].values()
        for entry in kinds.values()
    )
    sessions = _read_csv(tmp_path / "viewing_sessions.csv")
    assert sessions["session_id"].notna().all()
    assert not sessions["session_id"].duplicated().any()
    assert len(sessions) == SCALES["tiny"].sessions
    assert (pd.to_numeric(sessions["watch_seconds"]) >= 0).all()


# --------------------------------------------------------------------------- distributions


def test_title_popularity_is_zipf_like(tiny: Generated) -> None:
    clean = tiny.clean_sessions()
    per_title = clean["content_id"].value_counts()
    top = math.ceil(0.01 * len(tiny.documents))
    assert per_title.iloc[:top].sum() / per_title.sum() > 0.15
    assert per_title.iloc[0] > 10 * per_title.median()


def test_daily_and_weekly_rhythm(tiny: Generated) -> None:
    started = _timestamps(tiny.clean_sessions()["started_at"])
    by_hour = started.dt.hour.value_counts().reindex(range(24), fill_value=0)
    assert by_hour[list(EVENING_HOURS)].mean() > 2 * by_hour[list(NIGHT_HOURS)].mean()
    per_day = started.dt.floor("D").value_counts()
    weekend = per_day[per_day.index.dayofweek >= 5]
    weekday = per_day[per_day.index.dayofweek < 5]
    assert weekend.mean() > 1.1 * weekday.mean()


def test_device_mix_and_quality(tiny: Generated) -> None:
    sessions = tiny.sessions
    handheld = sessions["device_type"].isin(["mobile", "tablet"])
    assert (sessions.loc[handheld, "streaming_quality"] != "4K").all()
    assert (sessions["streaming_quality"] == "4K").any()
    assert set(sessions["device_type"]) == {"tv", "mobile", "tablet", "desktop", "console"}
    mobile_share = sessions.assign(mobile=sessions["device_type"] == "mobile").groupby("country")["mobile"].mean()
    assert mobile_share["IN"] - mobile_share["US"] > 0.2
    bitrate = pd.to_numeric(sessions["avg_bitrate_kbps"])
    bands = {
        "SD": (700, 2_000),
        "HD": (2_500, 5_000),
        "FHD": (5_500, 9_000),
        "4K": (12_000, 25_000),
    }
    for quality, (low, high) in bands.items():
        values = bitrate[sessions["streaming_quality"] == quality]
        assert values.between(low, high).all(), quality


def test_quality_respects_the_plan(tiny: Generated) -> None:
    users = tiny.users.dropna(subset=["user_id"])
    single = users[~users["user_id"].duplicated(keep=False)].set_index("user_id")
    plan = tiny.sessions["user_id"].map(single["subscription_plan"])
    quality = tiny.sessions["streaming_quality"]
    assert quality[plan == "basic"].isin(["SD", "HD"]).all()
    assert (quality[plan == "standard"] != "4K").all()


def _duration_minutes(documents: list[dict[str, Any]]) -> dict[tuple[str, str | None], int]:
    """Minutes per (content_id, episode code), episode None for movies; typed values only."""
    minutes: dict[tuple[str, str | None], int] = {}
    for document in documents:
        if document["type"] == "movie":
            if isinstance(document["duration_minutes"], int):
                minutes[(document["_id"], None)] = document["duration_minutes"]
            continue
        for season in document["seasons"]:
            for episode in season["episodes"]:
                code = f"S{season['season_number']:02d}E{episode['episode_number']:02d}"
                minutes[(document["_id"], code)] = episode["duration_minutes"]
    return minutes


def test_clean_sessions_respect_time(tiny: Generated) -> None:
    clean = tiny.clean_sessions()
    started = _timestamps(clean["started_at"])
    ended = _timestamps(clean["ended_at"])
    watch = pd.to_numeric(clean["watch_seconds"])
    assert (watch >= 0).all()
    assert (watch <= (ended - started).dt.total_seconds()).all()
    assert (_timestamps(clean["updated_at"]) >= ended).all()
    added = clean["content_id"].map({d["_id"]: d["added_at"] for d in tiny.documents})
    assert (started >= _timestamps(added)).all()
    users = tiny.users.dropna(subset=["user_id"]).drop_duplicates("user_id")
    signup = clean["user_id"].map(users.set_index("user_id")["signup_date"])
    assert (started >= pd.to_datetime(signup, utc=True)).all()


def test_clean_sessions_watch_existing_episodes_and_complete_at_90_percent(
    tiny: Generated,
) -> None:
    clean = tiny.clean_sessions()
    kinds = {d["_id"]: d["type"] for d in tiny.documents}
    is_series = clean["content_id"].map(kinds) == "series"
    assert clean.loc[~is_series, "episode"].isna().all()
    assert clean.loc[is_series, "episode"].notna().all()
    durations = _duration_minutes(tiny.documents)
    keys = [
        (content, None if pd.isna(episode) else episode)
        for content, episode in zip(clean["content_id"], clean["episode"], strict=True)
    ]
    assert all(key in durations for key, series in zip(keys, is_series, strict=True) if series)

    minutes = pd.Series([durations.get(key) for key in keys], index=clean.index, dtype=float)
    known = minutes.notna()
    watch = pd.to_numeric(clean["watch_seconds"])[known]
    completed = clean.loc[known, "completed"] == "true"
    assert ((watch >= 0.9 * (minutes[known] * 60)) == completed).all()
    assert 0.2 < completed.mean() < 0.8


def test_titles_durations_and_arrivals(tiny: Generated) -> None:
    movies = [d for d in tiny.documents if d["type"] == "movie"]
    series = [d for d in tiny.documents if d["type"] == "series"]
    assert movies and series
    assert all(80 <= d["duration_minutes"] <= 180 for d in movies if isinstance(d["duration_minutes"], int))
    assert all(20 <= e["duration_minutes"] <= 60 for d in series for s in d["seasons"] for e in s["episodes"])
    added = _timestamps(pd.Series([d["added_at"] for d in tiny.documents]))
    new = added >= pd.Timestamp(START)
    assert 0.1 < new.mean() < 0.3
    assert added[new].dt.month.nunique() >= 3  # spread across the window, not one drop
    new_ids = {d["_id"] for d, is_new in zip(tiny.documents, new, strict=True) if is_new}
    assert tiny.sessions["content_id"].isin(new_ids).any()


def test_users_plans_prices_and_churn(tiny: Generated) -> None:
    users = tiny.users.dropna(subset=["user_id"])
    known = users[users["subscription_plan"].isin(PLANS)]
    expected = [PRICES[(p, b)] for p, b in zip(known["subscription_plan"], known["billing_cycle"], strict=True)]
    assert list(known["monthly_price"]) == expected
    updated = _timestamps(users["updated_at"])
    signup = pd.to_datetime(users["signup_date"], utc=True)
    assert (updated >= signup).all()
    lapsed = users["status"].isin(["churned", "paused"])
    assert 0.05 < lapsed.mean() < 0.3
    assert (updated[lapsed] >= pd.Timestamp(START)).all()
    assert (updated > pd.Timestamp(START)).mean() > lapsed.mean()  # plan changes as well

    sessions = tiny.clean_sessions()
    lapsed_at = users[lapsed].drop_duplicates("user_id").set_index("user_id")["updated_at"]
    until = _timestamps(sessions["user_id"].map(lapsed_at))
    started = _timestamps(sessions["started_at"])
    assert (started[until.notna()] < until[until.notna()]).all()


def test_ratings_follow_viewing(tiny: Generated) -> None:
    listed = tiny.defect_keys("ratings")
    ratings = tiny.ratings.dropna(subset=["content_id"])
    clean = ratings[[(int(u), c) not in listed for u, c in zip(ratings["user_id"], ratings["content_id"], strict=True)]]
    watched = set(zip(pd.to_numeric(tiny.sessions["user_id"]), tiny.sessions["content_id"], strict=True))
    seen = [(int(u), c) in watched for u, c in zip(clean["user_id"], clean["content_id"], strict=True)]
    assert np.mean(seen) > 0.99
    assert (_timestamps(clean["updated_at"]) >= _timestamps(clean["rated_at"])).all()


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    ("kwargs", "parameter"),
    [
        ({"scale": "huge"}, "scale"),
        ({"defect_rate": 0.6}, "defect_rate"),
        ({"defect_rate": -0.01}, "defect_rate"),
        ({"defect_rate": float("nan")}, "defect_rate"),
        ({"defect_rate": "0.1"}, "defect_rate"),
        ({"seed": -1}, "seed"),
        ({"seed": 1.5}, "seed"),
        ({"start": datetime(2026, 1, 1, 12, tzinfo=UTC)}, "start"),
        ({"start": "2026-01-01"}, "start"),
        ({"progress": 5}, "progress"),
    ],
)
def test_bad_input_names_the_parameter(tmp_path: Path, kwargs: dict, parameter: str) -> None:
    target = tmp_path / "out"
    with pytest.raises(ValueError, match=rf"^{parameter}: ") as error:
        generate(target, **kwargs)
    assert "\n" not in str(error.value)
    assert not target.exists()


def test_failed_run_leaves_no_partial_files(tmp_path: Path) -> None:
    def fail_during_sessions(message: str) -> None:
        if message.startswith("viewing_sessions.csv"):
            raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError, match="interrupted"):
        generate(tmp_path, scale="tiny", progress=fail_during_sessions)
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_out_dir_that_is_a_file_is_rejected(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("x")
    with pytest.raises(ValueError, match=r"^out_dir: "):
        generate(target)
