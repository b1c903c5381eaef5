"""Write the sample input files and their README, deterministically.

Run ``python samples/generate.py`` to rewrite ``onboarding.csv``, ``onboarding.jsonl``,
``payroll.csv`` and ``README.md`` in this folder. Standard library plus the package's column
list (so the samples cannot drift from what the readers expect); the same seed always gives
byte-identical files. Every person, tax id and account number here is invented: tax ids
start with 9 and have ``00`` as their middle group, which no real SSN or ITIN has.
"""

from __future__ import annotations

import csv
import json
import random
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from flexpay_batch.input.columns import ONBOARDING_COLUMNS

# What the bundled simulator seeds; change here if the simulator's ids change.
PAY_GROUPS = ("pg_weekly", "pg_biweekly", "pg_semimonthly", "pg_monthly")
PAY_GROUP_WEIGHTS = (30, 40, 20, 10)
WEEKLY_PAY_GROUP = "pg_weekly"
EMPLOYMENT_TYPES = ("full_time", "part_time", "contractor")
EMPLOYMENT_TYPE_WEIGHTS = (70, 20, 10)
UNKNOWN_PAY_GROUP = "pg_quarterly"
CURRENCY = "USD"

SEED = 20260313
ONBOARDING_ROWS = 500
JSONL_ROWS = 50
FIRST_EXTERNAL_ID = 10001
HIRE_DATE_FIRST = date(2025, 1, 6)
HIRE_DATE_LAST = date(2026, 2, 27)
# The row whose external id the planted duplicate repeats (it stays valid itself).
DUPLICATE_OF_ROW = 57

# The weekly payroll the payroll sample is for (a Friday pay date).
PERIOD_START = date(2026, 3, 2)
PERIOD_END = date(2026, 3, 8)
PAY_DATE = date(2026, 3, 13)

PAYROLL_COLUMNS = ("employee_external_id", "hours", "gross_amount", "currency", "memo")

FIRST_NAMES = (
    "Olivia", "Liam", "Emma", "Noah", "Amelia", "Oliver", "Sophia", "Elijah", "Isabella",
    "Mateo", "Mia", "Lucas", "Charlotte", "Levi", "Harper", "James", "Evelyn", "Mason",
    "Luna", "Ethan", "Camila", "Aiden", "Gianna", "Logan", "Abigail", "Jackson", "Ella",
    "Sebastián", "Aaliyah", "Kai", "Nora", "Santiago", "Zoë", "Hiroshi", "Priya", "Wei",
    "Fatima", "Omar", "Chloé", "José", "Ngozi", "Tariq", "Anya", "Dmitri", "Siobhán",
    "Marcus", "Keisha", "DeShawn", "Mei", "Rafael", "Ingrid", "Björn", "Leilani", "Kwame",
    "Rosa", "Thanh", "Arjun", "Yasmin", "Connor", "Maeve",
)  # fmt: skip
LAST_NAMES = (
    "Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
    "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson",
    "Thomas", "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White",
    "Harris", "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young",
    "Nguyen", "Patel", "Kim", "Chen", "O'Brien", "O'Connor", "Müller", "Núñez",
    "Smith-Jones", "Okafor", "Haddad", "Kowalski", "Ivanova", "Yamamoto", "Singh",
    "de la Cruz", "Van Buren", "Fitzgerald", "Adeyemi", "Larsen", "Castillo", "Brooks",
    "Reyes", "Morales", "Bennett", "Sullivan", "Park", "Silva",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Employee:
    """One onboarding row, as the CSV holds it (money as a decimal string)."""

    external_id: str
    first_name: str
    last_name: str
    email: str
    hire_date: str
    pay_group_id: str
    employment_type: str
    compensation_type: str
    compensation_amount: str
    currency: str
    tax_id: str
    bank_routing_number: str
    bank_account_number: str

    def csv_cells(self) -> list[str]:
        return [getattr(self, column) for column in ONBOARDING_COLUMNS]

    def api_body(self) -> dict[str, object]:
        """The row in the API's JSON shape (nested compensation and bank account)."""
        return {
            "external_id": self.external_id,
            "first_name": self.first_name,
            "last_name": self.last_name,
            "email": self.email,
            "hire_date": self.hire_date,
            "pay_group_id": self.pay_group_id,
            "employment_type": self.employment_type,
            "compensation": {
                "type": self.compensation_type,
                "amount": self.compensation_amount,
                "currency": self.currency,
            },
            "tax_id": self.tax_id,
            "bank_account": {
                "routing_number": self.bank_routing_number,
                "account_number": self.bank_account_number,
            },
        }


@dataclass(frozen=True, slots=True)
class BadRow:
    """A deliberate mistake planted at spreadsheet row ``row`` (the header is row 1)."""

    row: int
    field: str
    code: str
    problem: str
    expected: str
    spoil: Callable[[Employee, list[Employee]], Employee]


@dataclass(frozen=True, slots=True)
class PayLine:
    """One payroll row for a weekly employee."""

    external_id: str
    hours: Decimal
    gross: Decimal
    memo: str


def _spoil_date(e: Employee, _: list[Employee]) -> Employee:
    return replace(e, hire_date="2026-02-30")


def _spoil_amount(e: Employee, _: list[Employee]) -> Employee:
    return replace(e, compensation_type="hourly", compensation_amount="24.755")


def _spoil_duplicate(e: Employee, earlier: list[Employee]) -> Employee:
    return replace(e, external_id=earlier[DUPLICATE_OF_ROW - 2].external_id)


def _spoil_pay_group(e: Employee, _: list[Employee]) -> Employee:
    return replace(e, pay_group_id=UNKNOWN_PAY_GROUP)


def _spoil_last_name(e: Employee, _: list[Employee]) -> Employee:
    return replace(e, last_name="")


def _spoil_email(e: Employee, _: list[Employee]) -> Employee:
    return replace(e, email=e.email.replace("@", ".", 1))


BAD_ROWS = (
    BadRow(
        38,
        "hire_date",
        "invalid_date",
        "`2026-02-30`, a day that does not exist",
        "rejected before sending: invalid date",
        _spoil_date,
    ),
    BadRow(
        95,
        "compensation_amount",
        "too_many_decimals",
        "`24.755`, three decimal places",
        "rejected before sending: money has at most two decimals",
        _spoil_amount,
    ),
    BadRow(
        152,
        "external_id",
        "duplicate",
        f"repeats the external id of row {DUPLICATE_OF_ROW} (a different person)",
        f"rejected before sending as a duplicate; row {DUPLICATE_OF_ROW} itself goes through",
        _spoil_duplicate,
    ),
    BadRow(
        241,
        "pay_group_id",
        "unknown_pay_group",
        f"`{UNKNOWN_PAY_GROUP}`, a pay group the organisation does not have",
        "rejected by `onboard` in the pre-flight check against `GET /pay_groups`, before any "
        "write; `validate` works offline and cannot know the organisation's pay groups",
        _spoil_pay_group,
    ),
    BadRow(
        317,
        "last_name",
        "missing",
        "empty",
        "rejected before sending: required field missing",
        _spoil_last_name,
    ),
    BadRow(
        426,
        "email",
        "invalid_email",
        "no `@` (`first.last.example.com`)",
        "rejected before sending: invalid email address",
        _spoil_email,
    ),
)

CENT = Decimal("0.01")


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def _ascii_slug(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(ch for ch in plain.lower() if ch.isalnum())


def _routing_number(rng: random.Random) -> str:
    """Nine digits with a valid ABA checksum, so a strict validator accepts them."""
    digits = [0, rng.randint(1, 9), *(rng.randint(0, 9) for _ in range(6))]
    weights = (3, 7, 1, 3, 7, 1, 3, 7)
    check = -sum(d * w for d, w in zip(digits, weights, strict=True)) % 10
    return "".join(map(str, [*digits, check]))


def _tax_id(rng: random.Random, used: set[str]) -> str:
    while True:
        candidate = f"9{rng.randint(0, 99):02d}00{rng.randint(0, 9999):04d}"
        if candidate not in used:
            used.add(candidate)
            return candidate


def _account_number(rng: random.Random) -> str:
    length = rng.randint(8, 12)
    return "".join(str(rng.randint(0, 9)) for _ in range(length))


def _hire_date(rng: random.Random) -> str:
    span = (HIRE_DATE_LAST - HIRE_DATE_FIRST).days
    day = HIRE_DATE_FIRST + timedelta(days=rng.randint(0, span))
    while day.weekday() >= 5:  # people start on weekdays
        day -= timedelta(days=1)
    return day.isoformat()


def _compensation(rng: random.Random, employment_type: str) -> tuple[str, Decimal]:
    if employment_type == "full_time" and rng.random() < 0.75:
        return "salary", Decimal(rng.randrange(42_000, 165_001, 250))
    low, high = {"full_time": (18, 55), "part_time": (15, 32), "contractor": (35, 95)}[
        employment_type
    ]
    return "hourly", Decimal(rng.randrange(low * 4, high * 4 + 1)) / 4


def _email(first: str, last: str, used: set[str]) -> str:
    base = f"{_ascii_slug(first)}.{_ascii_slug(last)}"
    candidate, n = base, 1
    while candidate in used:
        n += 1
        candidate = f"{base}{n}"
    used.add(candidate)
    return f"{candidate}@example.com"


def make_employees(rng: random.Random) -> list[Employee]:
    """``ONBOARDING_ROWS`` valid employees with sequential external ids."""
    emails: set[str] = set()
    tax_ids: set[str] = set()
    employees = []
    for index in range(ONBOARDING_ROWS):
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        employment_type = rng.choices(EMPLOYMENT_TYPES, EMPLOYMENT_TYPE_WEIGHTS)[0]
        comp_type, amount = _compensation(rng, employment_type)
        employees.append(
            Employee(
                external_id=f"E{FIRST_EXTERNAL_ID + index}",
                first_name=first,
                last_name=last,
                email=_email(first, last, emails),
                hire_date=_hire_date(rng),
                pay_group_id=rng.choices(PAY_GROUPS, PAY_GROUP_WEIGHTS)[0],
                employment_type=employment_type,
                compensation_type=comp_type,
                compensation_amount=f"{_money(amount)}",
                currency=CURRENCY,
                tax_id=_tax_id(rng, tax_ids),
                bank_routing_number=_routing_number(rng),
                bank_account_number=_account_number(rng),
            )
        )
    return employees


def plant_bad_rows(employees: list[Employee]) -> list[Employee]:
    """A copy of ``employees`` with each ``BAD_ROWS`` mistake applied at its row."""
    rows = list(employees)
    for bad in BAD_ROWS:
        index = bad.row - 2
        rows[index] = bad.spoil(rows[index], rows[:index])
    return rows


def valid_employees(rows: list[Employee]) -> list[Employee]:
    """The rows an onboarding run should create: every row not listed in ``BAD_ROWS``."""
    bad = {b.row for b in BAD_ROWS}
    return [e for row, e in enumerate(rows, start=2) if row not in bad]


def pay_line(rng: random.Random, e: Employee) -> PayLine:
    """One week's pay: salary / 52, or hours times rate, rounded half-up to the cent."""
    amount = Decimal(e.compensation_amount)
    if e.compensation_type == "salary":
        return PayLine(e.external_id, Decimal("40.00"), _money(amount / 52), "Weekly salary")
    quarter_hours = {"full_time": (144, 180), "part_time": (48, 119), "contractor": (40, 160)}
    low, high = quarter_hours[e.employment_type]
    hours = Decimal(rng.randint(low, high)) / 4
    memo = "Contract hours" if e.employment_type == "contractor" else "Regular hours"
    return PayLine(e.external_id, _money(hours), _money(hours * amount), memo)


def _write_csv(path: Path, header: Iterable[str], rows: Iterable[Iterable[object]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(header)
        writer.writerows(rows)


def write_jsonl(path: Path, employees: Iterable[Employee]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        for e in employees:
            handle.write(json.dumps(e.api_body(), ensure_ascii=False) + "\n")


def render_readme(rows: list[Employee], valid: list[Employee], pay: list[PayLine]) -> str:
    """The README text, with every number computed from the generated data."""
    total = sum((p.gross for p in pay), Decimal("0.00"))
    weekly_salaried = sum(1 for p in pay if p.memo == "Weekly salary")
    bad_table = "\n".join(
        f"| {b.row} | {rows[b.row - 2].external_id} | `{b.field}` | `{b.code}` | {b.problem} "
        f"| {b.expected} |"
        for b in BAD_ROWS
    )
    return README_TEMPLATE.format(
        rows=len(rows),
        valid=len(valid),
        bad=len(BAD_ROWS),
        first_id=rows[0].external_id,
        last_id=rows[-1].external_id,
        jsonl_rows=JSONL_ROWS,
        jsonl_last=valid[JSONL_ROWS - 1].external_id,
        bad_table=bad_table,
        weekly=WEEKLY_PAY_GROUP,
        pay_items=len(pay),
        weekly_salaried=weekly_salaried,
        weekly_hourly=len(pay) - weekly_salaried,
        total=f"{total:,}",
        total_plain=total,
        period_start=PERIOD_START.isoformat(),
        period_end=PERIOD_END.isoformat(),
        pay_date=PAY_DATE.isoformat(),
        pay_groups=", ".join(f"`{g}`" for g in PAY_GROUPS),
        employment_types=", ".join(f"`{t}`" for t in EMPLOYMENT_TYPES),
        seed=SEED,
    )


README_TEMPLATE = """\
# Sample files

Invented people for trying flexpay-batch end to end, in the sandbox or against a FlexPay test
organisation. Generated by `python samples/generate.py` (seed {seed}, the same
bytes every time); edit the generator, not the files. Every name, email (`example.com`),
tax id and bank account is made up: tax ids start with `9` and have `00` as their middle group,
which no real SSN or ITIN has; routing numbers carry a valid checksum but the accounts are random.

| file | rows | what it is |
| --- | --- | --- |
| `onboarding.csv` | {rows} ({valid} valid, {bad} bad) | bulk onboarding, ids {first_id}…{last_id} |
| `onboarding.jsonl` | {jsonl_rows} | the first {jsonl_rows} valid employees (up to {jsonl_last}) \
in the API's nested JSON shape |
| `payroll.csv` | {pay_items} | one week's pay for every valid `{weekly}` employee |

All files are UTF-8 without a BOM, `\\n` line endings; money is a decimal string with two places.
Names include accents and apostrophes (`Müller`, `O'Brien`) and some account numbers start with
`0`, so a reader that mangles either shows up at once.

## onboarding.csv

Columns: `external_id, first_name, last_name, email, hire_date, pay_group_id, employment_type,
compensation_type, compensation_amount, currency, tax_id, bank_routing_number,
bank_account_number`.

- Pay groups: {pay_groups}.
- Employment types: {employment_types}.

These are the ids the bundled simulator seeds. Salaries are yearly (`58250.00`), hourly rates
per hour (`24.75`).

Row numbers are spreadsheet rows: the header is row 1, the first employee row 2. These {bad}
rows are wrong on purpose; each should be listed in `rejects.csv` with its row number, field and
code (the codes `flexpay_batch.input.validation` uses today), and every other row should go through:

| row | external_id | field | code | the problem | expected outcome |
| --- | --- | --- | --- | --- | --- |
{bad_table}

Expected result of `onboard` on a fresh organisation: **{valid} created, {bad} rejected**, exit
code 1 (some rows rejected). Run it again and the {valid} come back as `already_existed` (409
`employee_exists`, recorded with the existing employee id), never created twice.

## onboarding.jsonl

The same people as the first {jsonl_rows} valid rows of `onboarding.csv`, one JSON object per
line, shaped like the `POST /employees` body: `compensation {{type, amount, currency}}` and
`bank_account {{routing_number, account_number}}`. No bad lines. On an organisation where the CSV
has already run, all {jsonl_rows} are reported as `already_existed`; on a fresh one, all are
created.

## payroll.csv

Columns: `employee_external_id, hours, gross_amount, currency, memo`. One line per valid
`{weekly}` employee of `onboarding.csv` ({weekly_salaried} salaried: yearly salary / 52;
{weekly_hourly} hourly: hours times rate), each rounded half-up to the cent. Run it against an
organisation where `onboarding.csv` has been onboarded:

    flexpay-batch payroll samples/payroll.csv --pay-group {weekly} \\
        --period-start {period_start} --period-end {period_end} --pay-date {pay_date}

**Expected: {pay_items} items, total {total} USD** (`expected_total` `{total_plain}`). The run is
submitted only if the server's item count and total match these exactly.
"""


def main(out_dir: Path | None = None) -> None:
    """Generate every sample file into ``out_dir`` (default: this file's folder)."""
    folder = out_dir or Path(__file__).resolve().parent
    rng = random.Random(SEED)
    rows = plant_bad_rows(make_employees(rng))
    valid = valid_employees(rows)
    weekly = [e for e in valid if e.pay_group_id == WEEKLY_PAY_GROUP]
    pay = [pay_line(rng, e) for e in weekly]
    _write_csv(folder / "onboarding.csv", ONBOARDING_COLUMNS, (e.csv_cells() for e in rows))
    write_jsonl(folder / "onboarding.jsonl", valid[:JSONL_ROWS])
    _write_csv(
        folder / "payroll.csv",
        PAYROLL_COLUMNS,
        ((p.external_id, p.hours, p.gross, CURRENCY, p.memo) for p in pay),
    )
    (folder / "README.md").write_text(render_readme(rows, valid, pay), encoding="utf-8")
    print(f"wrote {len(rows)} onboarding rows, {len(pay)} payroll rows to {folder}")


if __name__ == "__main__":
    main()
