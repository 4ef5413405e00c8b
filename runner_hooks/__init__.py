"""The integration an agent runner or grader calls. Uses casstore's public API only."""
