"""Forms shared by several views."""

from datetime import date

from flask_wtf import FlaskForm
from wtforms import BooleanField, DateField, SelectField
from wtforms.validators import InputRequired, Optional, ValidationError


class RegistrationFilterForm(FlaskForm):
    """Period and employee that narrow a data source's registrations (a GET form)."""

    class Meta:
        csrf = False

    date_from = DateField("From", validators=[Optional()])
    date_to = DateField("To", validators=[Optional()])
    employee = SelectField("Employee", coerce=int, validators=[Optional()], validate_choice=True)

    def set_employees(self, employees):
        """Offer the organization's employees, deactivated ones marked."""
        self.employee.choices = [(0, "All employees")] + [
            (e.id, e.name if e.active else f"{e.name} (deactivated)") for e in employees
        ]

    def validate_date_to(self, field):
        """A period must not end before it starts."""
        if field.data and self.date_from.data and field.data < self.date_from.data:
            raise ValidationError("The end of the period is before its start.")


class ImportPeriodForm(FlaskForm):
    """The period to import again from the original source."""

    date_from = DateField("From", validators=[InputRequired(message="Choose the first day of the period.")])
    date_to = DateField("To", validators=[InputRequired(message="Choose the last day of the period.")])
    confirm_removals = BooleanField("Delete them even if the source no longer has many of this period's registrations")

    def __init__(self, *args, max_span_days=None, today=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_span_days = max_span_days
        self.today = today or date.today()

    def validate_date_to(self, field):
        """Bounded, in order, not in the future, and within the connector's maximum span."""
        start, end = self.date_from.data, field.data
        if start is None or end is None:
            return
        if end < start:
            raise ValidationError("The end of the period is before its start.")
        if end > self.today:
            raise ValidationError("The period cannot end after today.")
        if self.max_span_days and (end - start).days + 1 > self.max_span_days:
            raise ValidationError(f"A period can span at most {self.max_span_days} days for this connector.")
