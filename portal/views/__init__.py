"""HTTP layer: one blueprint per area; views parse, check, call one operation, render."""
