"""Android phones over ADB: the transport (the only code that imports adb_shell), the pure
parsers of what a phone's shell prints, and the reader that turns a session into a report."""
