"""The alerts service's read models: the churn facts and the ranking kept from them
(``churn_facts``, filled by ``projection``), the alerts users work (``alert_list``),
and the reminders' followed tasks and birthdays (``reminder_list``)."""
