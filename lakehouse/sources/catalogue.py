"""The catalogue: titles, series with their seasons and episodes, and content.jsonl."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from expectations.domain import CONTENT_TYPES, MOVIE_MATURITY_RATINGS, SERIES_MATURITY_RATINGS
from lakehouse.sources.common import (
    BAD_TIMESTAMPS,
    ScaleSpec,
    Window,
    arrival_times,
    between,
    iso_array,
    probabilities,
    shares_in_order,
    year_of,
)
from lakehouse.sources.defects import (
    CONTENT,
    DEFECT_KINDS_BY_TABLE,
    DURATION_MINUTES_AS_STRING,
    MALFORMED_UPDATED_AT,
    MISSING_OPTIONAL_FIELD,
    MISSING_TITLE,
    RELEASE_YEAR_AS_STRING,
    UNKNOWN_EXTRA_FIELD,
    DefectLog,
    pick_rows,
    planned_counts,
)
from lakehouse.sources.people import COUNTRIES, DEFAULT_PLACE_COUNTRY, Pools

CONTENT_ID_PREFIX = "c"
CONTENT_ID_DIGITS = 6
MOVIE, SERIES = CONTENT_TYPES
NEW_TITLE_SHARE = 0.20  # added during the window
CATALOGUE_HISTORY_DAYS = 5 * 365
SERIES_SHARE = 0.35
ZIPF_EXPONENT = 1.05
COLD_TITLE_SHARE = 0.03
MOVIE_MINUTES_MEAN = 108
MOVIE_MINUTES_SD = 22
MOVIE_MINUTES_RANGE = (80, 180)
EPISODE_MINUTES_RANGE = (20, 60)
EPISODE_BASE_MINUTES = (22, 25, 30, 42, 45, 50, 55, 60)
EPISODE_JITTER_MINUTES = 3
SEASON_COUNT_P = 0.45
MAX_SEASONS = 8
EPISODES_PER_SEASON_RANGE = (6, 13)
GENRES = (
    "Action",
    "Adventure",
    "Animation",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Family",
    "Fantasy",
    "Horror",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "Reality",
)
GENRE_WEIGHTS = (9, 5, 4, 10, 6, 3, 12, 3, 4, 5, 4, 6, 5, 8, 2)
FAMILY_GENRES = frozenset({"Animation", "Family"})
MAX_GENRES = 3
CAST_SIZE_RANGE = (3, 8)
DIRECTOR_POOL_SHARE = 0.2
CONTENT_COUNTRIES = ("US", "GB", "FR", "DE", "ES", "JP", "KR", "IN", "BR", "MX", "IT", "CA")
CONTENT_COUNTRY_WEIGHTS = (40, 10, 6, 5, 6, 7, 7, 6, 4, 3, 3, 3)
LANGUAGE_BY_COUNTRY = {
    "US": "en",
    "GB": "en",
    "CA": "en",
    "FR": "fr",
    "DE": "de",
    "ES": "es",
    "MX": "es",
    "JP": "ja",
    "KR": "ko",
    "IN": "hi",
    "BR": "pt",
    "IT": "it",
}
MOVIE_MATURITY_WEIGHTS = {"G": 0.08, "PG": 0.20, "PG-13": 0.37, "R": 0.32, "NC-17": 0.03}
SERIES_MATURITY_WEIGHTS = {"TV-Y": 0.05, "TV-G": 0.10, "TV-PG": 0.22, "TV-14": 0.33, "TV-MA": 0.30}
FAMILY_MATURITY = {MOVIE: ("G", "PG"), SERIES: ("TV-Y", "TV-G")}
OLDEST_RELEASE_YEAR = 1950
RELEASE_LAG_P = 0.12  # geometric lag in years between release and catalogue addition
NEW_TITLE_MAX_LAG_YEARS = 1
METADATA_CORRECTION_SHARE = 0.20
TITLE_QUALITY_MEAN = 3.5
TITLE_QUALITY_SD = 0.6
POLARISED_SHARE = 0.06
TITLE_ADJECTIVES = (
    "Silent", "Broken", "Golden", "Hidden", "Last", "Crimson", "Endless", "Frozen", "Wild",
    "Dark", "Lonely", "Burning", "Lost", "Secret", "Electric", "Quiet", "Savage", "Bright",
    "Hollow", "Midnight", "Northern", "Velvet", "Iron", "Paper", "Glass",
)  # fmt: skip
TITLE_NOUNS = (
    "Harbor", "Kingdom", "Signal", "Garden", "River", "Empire", "Witness", "Orchard", "Storm",
    "Promise", "Frontier", "Mirror", "Summer", "Horizon", "Machine", "Island", "Echo", "Letter",
    "Border", "Circus", "Lighthouse", "Tide", "Station", "Crown", "Legacy",
)  # fmt: skip
TITLE_PATTERNS = (
    "The {adj} {noun}",
    "{noun} of {place}",
    "{name}'s {noun}",
    "{adj} {noun}s",
    "Return to {place}",
    "The Last {noun}",
    "{adj} {place}",
)


BAD_RELEASE_YEARS = ("nineteen-ninety", "unknown", "19??", "TBA")
DURATION_STRING_FORMAT = "{minutes} min"
EXTRA_CONTENT_FIELDS = ("trailer_url", "imdb_id", "box_office_usd")
OPTIONAL_CONTENT_FIELDS = ("director", "cast", "maturity_rating")


def content_id_for(number: int) -> str:
    """``c000123`` style content id."""
    return f"{CONTENT_ID_PREFIX}{number:0{CONTENT_ID_DIGITS}d}"


@dataclass(frozen=True)
class _Episodes:
    """Seasons and episodes of all series as flat arrays, in title order.

    Per series (``series_index`` gives its title): ``seasons``, ``season_offset``. Per season:
    ``season_number``, ``first_episode``, ``episode_total``. Per episode: ``number``,
    ``title``, ``minutes``, ``code`` (``S01E03``). Per title (0 for movies): ``offset``,
    ``count`` into the flat episode arrays.
    """

    series_index: np.ndarray
    seasons: np.ndarray
    season_offset: np.ndarray
    season_number: np.ndarray
    first_episode: np.ndarray
    episode_total: np.ndarray
    number: np.ndarray
    title: list[str]
    minutes: np.ndarray
    code: list[str]
    offset: np.ndarray
    count: np.ndarray


def _offsets(sizes: np.ndarray) -> np.ndarray:
    """Start positions of consecutive blocks of the given sizes."""
    return np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)


def build_episodes(rng: np.random.Generator, is_series: np.ndarray) -> _Episodes:
    """Draw seasons, episodes and episode durations (one base length per series)."""
    series_index = np.flatnonzero(is_series)
    seasons = np.clip(rng.geometric(SEASON_COUNT_P, series_index.size), 1, MAX_SEASONS)
    low, high = EPISODES_PER_SEASON_RANGE
    episode_total = rng.integers(low, high + 1, int(seasons.sum()))
    season_offset = _offsets(seasons)
    season_series = np.repeat(np.arange(series_index.size), seasons)
    season_number = np.arange(season_series.size) - season_offset[season_series] + 1
    first_episode = _offsets(episode_total)
    episode_season = np.repeat(np.arange(season_series.size), episode_total)
    number = np.arange(episode_season.size) - first_episode[episode_season] + 1
    episode_series = season_series[episode_season]
    base_minutes = rng.choice(EPISODE_BASE_MINUTES, size=series_index.size)
    jitter = rng.integers(-EPISODE_JITTER_MINUTES, EPISODE_JITTER_MINUTES + 1, number.size)
    minutes = np.clip(base_minutes[episode_series] + jitter, *EPISODE_MINUTES_RANGE)
    adjective = rng.integers(0, len(TITLE_ADJECTIVES), number.size).tolist()
    noun = rng.integers(0, len(TITLE_NOUNS), number.size).tolist()
    per_series = np.bincount(episode_series, minlength=series_index.size)
    offset = np.zeros(is_series.size, dtype=np.int64)
    count = np.zeros(is_series.size, dtype=np.int64)
    offset[series_index] = _offsets(per_series)
    count[series_index] = per_series
    seasons_of_episodes = season_number[episode_season].tolist()
    return _Episodes(
        series_index=series_index,
        seasons=seasons,
        season_offset=season_offset,
        season_number=season_number,
        first_episode=first_episode,
        episode_total=episode_total,
        number=number,
        title=[f"{TITLE_ADJECTIVES[a]} {TITLE_NOUNS[b]}" for a, b in zip(adjective, noun, strict=True)],
        minutes=minutes,
        code=[
            f"S{season:02d}E{episode:02d}" for season, episode in zip(seasons_of_episodes, number.tolist(), strict=True)
        ],
        offset=offset,
        count=count,
    )


@dataclass(frozen=True)
class Catalogue:
    """Titles in ``added_at`` order (``_id`` number = index + 1) and their flat episodes."""

    ids: pa.Array
    added_ts: np.ndarray
    updated_ts: np.ndarray
    is_series: np.ndarray
    popularity: np.ndarray  # relative sessions, 0 = cold title
    popularity_cumulative: np.ndarray
    movie_minutes: np.ndarray
    episode_offset: np.ndarray  # first flat episode of a series
    episode_count: np.ndarray
    episode_codes: pa.Array  # flat, ``S01E03``
    episode_minutes: np.ndarray  # flat
    quality: np.ndarray  # mean rating
    polarised: np.ndarray
    documents: list[dict[str, Any]]

    @property
    def n(self) -> int:
        """Number of titles."""
        return int(self.added_ts.size)


def build_catalogue(rng: np.random.Generator, spec: ScaleSpec, window: Window, pools: Pools) -> Catalogue:
    """Draw the titles: arrival, type, popularity, structure and their documents."""
    n = spec.titles
    added = arrival_times(rng, n, NEW_TITLE_SHARE, CATALOGUE_HISTORY_DAYS, window)
    is_series = rng.random(n) < SERIES_SHARE

    popularity = (rng.permutation(n) + 1.0) ** -ZIPF_EXPONENT
    cold = rng.random(n) < COLD_TITLE_SHARE
    cold[0] = False  # the oldest title anchors every draw "among titles added by t"
    popularity[cold] = 0.0
    movie_minutes = np.clip(np.rint(rng.normal(MOVIE_MINUTES_MEAN, MOVIE_MINUTES_SD, n)), *MOVIE_MINUTES_RANGE).astype(
        np.int64
    )
    episodes = build_episodes(rng, is_series)

    updated = np.where(
        rng.random(n) < METADATA_CORRECTION_SHARE,
        between(rng, np.maximum(added, window.start_ts), np.full(n, window.end_ts)),
        added,
    )
    added_year = year_of(added)
    lag = np.where(
        added >= window.start_ts,
        rng.integers(0, NEW_TITLE_MAX_LAG_YEARS + 1, n),
        rng.geometric(RELEASE_LAG_P, n) - 1,
    )
    release_year = np.clip(added_year - lag, OLDEST_RELEASE_YEAR, added_year)
    quality = rng.normal(TITLE_QUALITY_MEAN, TITLE_QUALITY_SD, n)
    polarised = rng.random(n) < POLARISED_SHARE

    documents = build_documents(
        rng,
        is_series=is_series,
        added=added,
        updated=updated,
        release_year=release_year,
        movie_minutes=movie_minutes,
        episodes=episodes,
        pools=pools,
    )
    has_episodes = episodes.minutes.size > 0
    return Catalogue(
        ids=pa.array([content_id_for(i + 1) for i in range(n)], type=pa.string()),
        added_ts=added,
        updated_ts=updated,
        is_series=is_series,
        popularity=popularity,
        popularity_cumulative=np.cumsum(popularity),
        movie_minutes=movie_minutes,
        episode_offset=episodes.offset,
        episode_count=episodes.count,
        # one dummy entry keeps lookups valid when a catalogue has no series at all
        episode_codes=pa.array(episodes.code if has_episodes else [""], type=pa.string()),
        episode_minutes=episodes.minutes if has_episodes else np.zeros(1, dtype=np.int64),
        quality=quality,
        polarised=polarised,
        documents=documents,
    )


def build_documents(
    rng: np.random.Generator,
    *,
    is_series: np.ndarray,
    added: np.ndarray,
    updated: np.ndarray,
    release_year: np.ndarray,
    movie_minutes: np.ndarray,
    episodes: _Episodes,
    pools: Pools,
) -> list[dict[str, Any]]:
    """Build the Mongo documents (one loop over titles, which are few)."""
    n = is_series.size
    genre_keys = np.log(probabilities(GENRE_WEIGHTS))[None, :] + rng.gumbel(size=(n, len(GENRES)))
    genre_order = np.argsort(-genre_keys, axis=1)[:, :MAX_GENRES]  # weighted, no repeats
    genre_count = rng.integers(1, MAX_GENRES + 1, n)
    country = rng.choice(len(CONTENT_COUNTRIES), size=n, p=probabilities(CONTENT_COUNTRY_WEIGHTS))
    titles = draw_titles(rng, country, pools)
    movie_rating = rng.choice(
        len(MOVIE_MATURITY_RATINGS),
        size=n,
        p=probabilities(shares_in_order(MOVIE_MATURITY_WEIGHTS, MOVIE_MATURITY_RATINGS)),
    )
    series_rating = rng.choice(
        len(SERIES_MATURITY_RATINGS),
        size=n,
        p=probabilities(shares_in_order(SERIES_MATURITY_WEIGHTS, SERIES_MATURITY_RATINGS)),
    )
    family_rating = rng.integers(0, len(FAMILY_MATURITY[MOVIE]), n)
    cast_size = rng.integers(CAST_SIZE_RANGE[0], CAST_SIZE_RANGE[1] + 1, n)
    director = rng.integers(0, max(1, int(len(pools.people) * DIRECTOR_POOL_SHARE)), n)
    added_text = iso_array(added).to_pylist()
    updated_text = iso_array(updated).to_pylist()
    series_position = np.full(n, -1, dtype=np.int64)
    series_position[episodes.series_index] = np.arange(episodes.series_index.size)

    documents: list[dict[str, Any]] = []
    for i in range(n):
        genres = [GENRES[g] for g in genre_order[i, : genre_count[i]].tolist()]
        kind = SERIES if is_series[i] else MOVIE
        if FAMILY_GENRES.intersection(genres):
            maturity = FAMILY_MATURITY[kind][family_rating[i]]
        elif kind == SERIES:
            maturity = SERIES_MATURITY_RATINGS[series_rating[i]]
        else:
            maturity = MOVIE_MATURITY_RATINGS[movie_rating[i]]
        document: dict[str, Any] = {
            "_id": content_id_for(i + 1),
            "title": titles[i],
            "type": kind,
            "genres": genres,
            "release_year": int(release_year[i]),
        }
        if kind == MOVIE:
            document["duration_minutes"] = int(movie_minutes[i])
        else:
            document["seasons"] = _seasons(episodes, int(series_position[i]))
        cast = rng.choice(len(pools.people), size=int(cast_size[i]), replace=False)
        production = CONTENT_COUNTRIES[country[i]]
        document.update(
            cast=[pools.people[p] for p in cast.tolist()],
            director=pools.people[int(director[i])],
            language=LANGUAGE_BY_COUNTRY[production],
            country=production,
            maturity_rating=maturity,
            added_at=added_text[i],
            updated_at=updated_text[i],
        )
        documents.append(document)
    return documents


def draw_titles(rng: np.random.Generator, country: np.ndarray, pools: Pools) -> list[str]:
    """Made-up titles from word patterns; places come from the production country."""
    n = country.size
    pattern = rng.integers(0, len(TITLE_PATTERNS), n)
    adjective = rng.integers(0, len(TITLE_ADJECTIVES), n)
    noun = rng.integers(0, len(TITLE_NOUNS), n)
    name = rng.integers(0, len(pools.first_names), n)
    pool_country = np.asarray(
        [
            COUNTRIES.index(code) if code in COUNTRIES else COUNTRIES.index(DEFAULT_PLACE_COUNTRY)
            for code in CONTENT_COUNTRIES
        ]
    )[country]
    place = pools.city_offset[pool_country] + np.floor(rng.random(n) * pools.city_count[pool_country]).astype(np.int64)
    return [
        TITLE_PATTERNS[pattern[i]].format(
            adj=TITLE_ADJECTIVES[adjective[i]],
            noun=TITLE_NOUNS[noun[i]],
            place=pools.cities[place[i]],
            name=pools.first_names[name[i]],
        )
        for i in range(n)
    ]


def _seasons(episodes: _Episodes, position: int) -> list[dict[str, Any]]:
    """Nested ``seasons[{season_number, episodes[...]}]`` of the series at ``position``."""
    first_season = int(episodes.season_offset[position])
    result = []
    for season in range(first_season, first_season + int(episodes.seasons[position])):
        start = int(episodes.first_episode[season])
        stop = start + int(episodes.episode_total[season])
        result.append(
            {
                "season_number": int(episodes.season_number[season]),
                "episodes": [
                    {
                        "episode_number": int(episodes.number[e]),
                        "title": episodes.title[e],
                        "duration_minutes": int(episodes.minutes[e]),
                    }
                    for e in range(start, stop)
                ],
            }
        )
    return result


def write_content(path: Path, rng: np.random.Generator, catalogue: Catalogue, rate: float, log: DefectLog) -> int:
    """Inject the content defects and write content.jsonl; return the number of documents."""
    n = catalogue.n
    counts = planned_counts(rate, n, DEFECT_KINDS_BY_TABLE[CONTENT])
    available = np.ones(n, dtype=bool)
    cold = catalogue.popularity == 0
    movies = ~catalogue.is_series
    documents = [dict(document) for document in catalogue.documents]
    ids = catalogue.ids.to_pylist()

    rows = pick_rows(rng, available, counts[MISSING_TITLE])
    for row in rows.tolist():
        del documents[row]["title"]
    log.record(CONTENT, MISSING_TITLE, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[RELEASE_YEAR_AS_STRING], preferred=cold)
    for row, value in zip(rows.tolist(), rng.choice(BAD_RELEASE_YEARS, rows.size), strict=True):
        documents[row]["release_year"] = str(value)
    log.record(CONTENT, RELEASE_YEAR_AS_STRING, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[DURATION_MINUTES_AS_STRING], eligible=movies, preferred=cold)
    for row in rows.tolist():
        minutes = documents[row]["duration_minutes"]
        documents[row]["duration_minutes"] = DURATION_STRING_FORMAT.format(minutes=minutes)
    log.record(CONTENT, DURATION_MINUTES_AS_STRING, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[UNKNOWN_EXTRA_FIELD])
    fields = rng.integers(0, len(EXTRA_CONTENT_FIELDS), rows.size)
    for row, field in zip(rows.tolist(), fields.tolist(), strict=True):
        name = EXTRA_CONTENT_FIELDS[field]
        documents[row][name] = _extra_field_value(name, ids[row], rng)
    log.record(CONTENT, UNKNOWN_EXTRA_FIELD, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[MALFORMED_UPDATED_AT], preferred=cold)
    for row, value in zip(rows.tolist(), rng.choice(BAD_TIMESTAMPS, rows.size), strict=True):
        documents[row]["updated_at"] = str(value)
    log.record(CONTENT, MALFORMED_UPDATED_AT, rows.size, (ids[r] for r in rows.tolist()))

    rows = pick_rows(rng, available, counts[MISSING_OPTIONAL_FIELD])
    fields = rng.integers(0, len(OPTIONAL_CONTENT_FIELDS), rows.size)
    for row, field in zip(rows.tolist(), fields.tolist(), strict=True):
        del documents[row][OPTIONAL_CONTENT_FIELDS[field]]
    log.record(CONTENT, MISSING_OPTIONAL_FIELD, rows.size, (ids[r] for r in rows.tolist()))

    with path.open("w", encoding="utf-8", newline="\n") as handle:
        for document in documents:
            handle.write(json.dumps(document, ensure_ascii=False))
            handle.write("\n")
    return n


def _extra_field_value(name: str, content_id: str, rng: np.random.Generator) -> Any:
    """Make up a plausible value for a field the contract does not know."""
    if name == "trailer_url":
        return f"https://cdn.example.com/trailers/{content_id}.mp4"
    if name == "imdb_id":
        return f"tt{int(rng.integers(1_000_000, 9_999_999)):07d}"
    return int(rng.integers(100_000, 500_000_000))
