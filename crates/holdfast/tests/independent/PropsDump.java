// The JDK's own java.util.Properties reading files that holdfast rewrote: the
// independent parser of the properties tests. Run as a single-file program:
//   java PropsDump.java reader|stream FILE...
// prints, for every property of every file, "<file index> <key hex> <value hex>"
// (UTF-8 bytes in hex), sorted by key. "reader" loads through a UTF-8 Reader
// (Keycloak's SmallRye), "stream" through an InputStream (ISO-8859-1).
import java.io.*;
import java.nio.charset.StandardCharsets;
import java.util.*;

public class PropsDump {
    static String hex(String s) {
        StringBuilder b = new StringBuilder();
        for (byte x : s.getBytes(StandardCharsets.UTF_8)) b.append(String.format("%02x", x & 0xff));
        return b.toString();
    }

    public static void main(String[] args) throws Exception {
        boolean reader = args[0].equals("reader");
        for (int i = 1; i < args.length; i++) {
            Properties p = new Properties();
            if (reader) {
                try (Reader r = new InputStreamReader(new FileInputStream(args[i]), StandardCharsets.UTF_8)) { p.load(r); }
            } else {
                try (InputStream s = new FileInputStream(args[i])) { p.load(s); }
            }
            for (String k : new TreeSet<>(p.stringPropertyNames())) {
                System.out.println((i - 1) + " " + hex(k) + " " + hex(p.getProperty(k)));
            }
        }
    }
}
