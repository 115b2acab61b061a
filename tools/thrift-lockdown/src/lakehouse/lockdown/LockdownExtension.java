package lakehouse.lockdown;

import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.SparkSessionExtensions;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import scala.runtime.AbstractFunction1;
import scala.runtime.AbstractFunction2;
import scala.runtime.BoxedUnit;

/**
 * The Thrift server's SQL lockdown: {@code spark.sql.extensions=...,lakehouse.lockdown.LockdownExtension}.
 *
 * <p>It wraps the session's SQL parser (after Delta's, so Delta's commands are seen too) with
 * {@link LockdownParser}, which refuses every statement that would load code, call Java, run a
 * program or touch files by path, before anything is resolved or run. Only the Thrift server
 * loads it: the project's own Spark jobs keep the full SQL surface.
 */
public final class LockdownExtension extends AbstractFunction1<SparkSessionExtensions, BoxedUnit> {
    @Override
    public BoxedUnit apply(SparkSessionExtensions extensions) {
        extensions.injectParser(new AbstractFunction2<SparkSession, ParserInterface, ParserInterface>() {
            @Override
            public ParserInterface apply(SparkSession session, ParserInterface delegate) {
                return new LockdownParser(delegate);
            }
        });
        return BoxedUnit.UNIT;
    }
}
