"""Every SPEC rule for what people type and upload, with normalised values and clear messages:
the studio's submit form (studio), the gallery's filters and selections (gallery), and
accounts, teams and invites (accounts)."""
