"""Names, places and people: the Faker pools (seeded, per country) that users and titles draw from."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from faker import Faker

FAKER_SEED_STRIDE = 101
COUNTRIES = ("US", "GB", "DE", "FR", "ES", "BR", "MX", "IN", "JP", "CA")
COUNTRY_LOCALES = {
    "US": "en_US",
    "GB": "en_GB",
    "DE": "de_DE",
    "FR": "fr_FR",
    "ES": "es_ES",
    "BR": "pt_BR",
    "MX": "es_MX",
    "IN": "en_IN",
    "JP": "ja_JP",
    "CA": "en_CA",
}
ROMANIZED_NAME_COUNTRIES = frozenset({"JP"})  # Latin-script names, so emails stay ASCII
FIRST_NAMES_PER_SEX = 60
LAST_NAMES_PER_COUNTRY = 100
CITIES_PER_COUNTRY = 25
PEOPLE_PER_COUNTRY = 150  # cast and directors
FEMALE, MALE = 0, 1
DEFAULT_PLACE_COUNTRY = "US"  # city pool for productions from countries without users


@dataclass(frozen=True)
class Pools:
    """Small Faker-made pools that NumPy draws from. Offsets index the flat arrays."""

    first_names: list[str]
    first_offset: np.ndarray  # (country, sex)
    first_count: np.ndarray
    last_names: list[str]
    last_offset: np.ndarray  # (country,)
    last_count: np.ndarray
    cities: list[str]
    city_offset: np.ndarray
    city_count: np.ndarray
    people: list[str]


def _unique(values: list[str]) -> list[str]:
    """Distinct values in first-seen order."""
    return list(dict.fromkeys(values))


def build_pools(seed: int) -> Pools:
    """Names, cities and people per country from seeded, locale-specific Faker instances."""
    first: list[str] = []
    first_offset = np.zeros((len(COUNTRIES), 2), dtype=np.int64)
    first_count = np.zeros((len(COUNTRIES), 2), dtype=np.int64)
    last: list[str] = []
    cities: list[str] = []
    people: list[str] = []
    last_offset, last_count = [], []
    city_offset, city_count = [], []
    for index, country in enumerate(COUNTRIES):
        fake = Faker(COUNTRY_LOCALES[country])
        fake.seed_instance(seed * FAKER_SEED_STRIDE + index)
        romanized = country in ROMANIZED_NAME_COUNTRIES
        prefix = "first_romanized_name" if romanized else "first_name"
        last_name = fake.last_romanized_name if romanized else fake.last_name
        for sex, suffix in ((FEMALE, "_female"), (MALE, "_male")):
            maker = getattr(fake, prefix + suffix)
            names = _unique([maker() for _ in range(FIRST_NAMES_PER_SEX)])
            first_offset[index, sex], first_count[index, sex] = len(first), len(names)
            first.extend(names)
        surnames = _unique([last_name() for _ in range(LAST_NAMES_PER_COUNTRY)])
        last_offset.append(len(last))
        last_count.append(len(surnames))
        last.extend(surnames)
        places = _unique([fake.city() for _ in range(CITIES_PER_COUNTRY)])
        city_offset.append(len(cities))
        city_count.append(len(places))
        cities.extend(places)
        given = fake.first_romanized_name if romanized else fake.first_name
        people.extend(f"{given()} {last_name()}" for _ in range(PEOPLE_PER_COUNTRY))
    return Pools(
        first_names=first,
        first_offset=first_offset,
        first_count=first_count,
        last_names=last,
        last_offset=np.asarray(last_offset),
        last_count=np.asarray(last_count),
        cities=cities,
        city_offset=np.asarray(city_offset),
        city_count=np.asarray(city_count),
        people=_unique(people),
    )
