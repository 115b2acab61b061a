package lakehouse.lockdown;

/** A statement the endpoint does not run; the message says what was refused and why. */
public final class RefusedStatementException extends SecurityException {
    private static final long serialVersionUID = 1L;

    RefusedStatementException(String what, String why) {
        super(what + " is refused on this endpoint: " + why
            + " (the Thrift endpoint serves the lakehouse's tables, nothing else)");
    }
}
