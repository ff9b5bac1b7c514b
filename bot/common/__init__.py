"""What every front-end shares: turning a platform message into a pipeline request, voice enrolment."""
