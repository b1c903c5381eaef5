"""One valid input row per kind, as a reader yields it: what the model and validation tests vary."""

from __future__ import annotations

ONBOARDING_ROW: dict[str, object] = {
    "external_id": "E-1001",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "email": "ada@example.com",
    "hire_date": "2026-01-05",
    "pay_group_id": "pg_weekly",
    "employment_type": "full_time",
    "compensation_type": "salary",
    "compensation_amount": "85000",
    "currency": "USD",
    "tax_id": "123-45-6789",
    "bank_routing_number": "011000015",
    "bank_account_number": "000123456789",
}
PAYROLL_ROW: dict[str, object] = {
    "employee_external_id": "E-1001",
    "hours": "40",
    "gross_amount": "1250.5",
    "currency": "USD",
    "memo": "week 1",
}
