"""State machines and orchestration. Services see drivers only through small async interfaces."""
