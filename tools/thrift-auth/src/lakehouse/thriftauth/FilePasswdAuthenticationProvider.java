package lakehouse.thriftauth;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.util.Arrays;
import java.util.Base64;
import java.util.List;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.security.sasl.AuthenticationException;
import org.apache.hadoop.conf.Configurable;
import org.apache.hadoop.conf.Configuration;
import org.apache.hive.service.auth.PasswdAuthenticationProvider;

/**
 * User name and password check for the Spark Thrift Server (hive.server2.authentication=CUSTOM).
 *
 * <p>The server never holds the plain password: it reads a file of PBKDF2 hashes, one user per
 * line, {@code user:pbkdf2-sha256:iterations:base64(salt):base64(hash)}, whose path is the
 * property {@value #USERS_FILE_PROPERTY} of hive-site.xml (Spark's CustomAuthenticationProviderImpl
 * builds a new HiveConf, so the property must be in hive-site.xml, not a --hiveconf). The file
 * is read on every login, so a changed password takes effect without a restart. lakehouse
 * writes the file (owner-only) from LAKEHOUSE_THRIFT_PASSWORD or its generated password.
 *
 * <p>Neither the password nor the hash is ever logged or put into an exception message.
 */
public final class FilePasswdAuthenticationProvider implements PasswdAuthenticationProvider, Configurable {
    public static final String USERS_FILE_PROPERTY = "lakehouse.thrift.auth.users-file";
    static final String SCHEME = "pbkdf2-sha256";
    private static final String ALGORITHM = "PBKDF2WithHmacSHA256";
    private static final int MAX_ITERATIONS = 10_000_000;
    private static final String REFUSED = "Error validating the login: wrong user name or password";
    // Hashed when the user is unknown, so that an unknown user costs as much time as a known one.
    private static final byte[] DUMMY_SALT = new byte[16];
    private static final int DUMMY_ITERATIONS = 310_000;

    private Configuration conf;

    @Override
    public void setConf(Configuration conf) {
        this.conf = conf;
    }

    @Override
    public Configuration getConf() {
        return conf;
    }

    @Override
    public void Authenticate(String user, String password) throws AuthenticationException {
        String path = conf == null ? null : conf.getTrimmed(USERS_FILE_PROPERTY);
        if (path == null || path.isEmpty()) {
            throw new AuthenticationException(
                "password authentication is not configured: " + USERS_FILE_PROPERTY + " is not set in hive-site.xml");
        }
        String[] entry = find(path, user);
        if (password == null || password.isEmpty()) {
            throw new AuthenticationException(REFUSED);
        }
        if (entry == null) {
            derive(password, DUMMY_SALT, DUMMY_ITERATIONS, 32);
            throw new AuthenticationException(REFUSED);
        }
        int iterations;
        byte[] salt;
        byte[] expected;
        try {
            iterations = Integer.parseInt(entry[2]);
            salt = Base64.getDecoder().decode(entry[3]);
            expected = Base64.getDecoder().decode(entry[4]);
        } catch (IllegalArgumentException e) {
            throw new AuthenticationException("the users file " + path + " has a malformed line for user " + user);
        }
        if (iterations < 1 || iterations > MAX_ITERATIONS || expected.length == 0) {
            throw new AuthenticationException("the users file " + path + " has a malformed line for user " + user);
        }
        byte[] actual = derive(password, salt, iterations, expected.length);
        if (!MessageDigest.isEqual(expected, actual)) {
            throw new AuthenticationException(REFUSED);
        }
    }

    /** The fields of the user's line, or null when the user is not in the file. */
    private static String[] find(String path, String user) throws AuthenticationException {
        List<String> lines;
        try {
            lines = Files.readAllLines(Paths.get(path), StandardCharsets.UTF_8);
        } catch (IOException e) {
            throw new AuthenticationException("cannot read the users file " + path + ": " + e.getClass().getSimpleName());
        }
        for (String line : lines) {
            String trimmed = line.trim();
            if (trimmed.isEmpty() || trimmed.startsWith("#")) {
                continue;
            }
            String[] fields = trimmed.split(":", -1);
            if (fields.length == 5 && fields[0].equals(user) && SCHEME.equals(fields[1])) {
                return fields;
            }
        }
        return null;
    }

    private static byte[] derive(String password, byte[] salt, int iterations, int length)
            throws AuthenticationException {
        char[] chars = password.toCharArray();
        PBEKeySpec spec = new PBEKeySpec(chars, salt, iterations, length * 8);
        try {
            return SecretKeyFactory.getInstance(ALGORITHM).generateSecret(spec).getEncoded();
        } catch (GeneralSecurityException e) {
            throw new AuthenticationException("cannot verify the password: " + e.getClass().getSimpleName());
        } finally {
            spec.clearPassword();
            Arrays.fill(chars, '\0');
        }
    }
}
