"""Forms shared by several views."""

from flask_wtf import FlaskForm
from wtforms import DateField, SelectField
from wtforms.validators import Optional, ValidationError


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
