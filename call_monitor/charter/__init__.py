"""The charter's clauses as pure rules over call records."""
