"""flexpay-batch: bulk onboarding and payroll through FlexPay, exactly once, at the limit."""

__version__ = "0.1.0"
