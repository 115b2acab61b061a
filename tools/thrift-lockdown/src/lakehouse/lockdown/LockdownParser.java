package lakehouse.lockdown;

import java.lang.reflect.Method;
import java.util.ArrayDeque;
import java.util.Collections;
import java.util.Deque;
import java.util.IdentityHashMap;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.catalyst.FunctionIdentifier;
import org.apache.spark.sql.catalyst.TableIdentifier;
import org.apache.spark.sql.catalyst.analysis.UnresolvedFunction;
import org.apache.spark.sql.catalyst.analysis.UnresolvedRelation;
import org.apache.spark.sql.catalyst.catalog.CatalogStorageFormat;
import org.apache.spark.sql.catalyst.expressions.Expression;
import org.apache.spark.sql.catalyst.parser.ParameterContext;
import org.apache.spark.sql.catalyst.parser.ParseException;
import org.apache.spark.sql.catalyst.parser.ParserInterface;
import org.apache.spark.sql.catalyst.plans.logical.CreateNamespace;
import org.apache.spark.sql.catalyst.plans.logical.LogicalPlan;
import org.apache.spark.sql.catalyst.plans.logical.OptionList;
import org.apache.spark.sql.catalyst.plans.logical.TableSpecBase;
import org.apache.spark.sql.catalyst.trees.TreeNode;
import org.apache.spark.sql.execution.command.SetCommand;
import org.apache.spark.sql.types.DataType;
import org.apache.spark.sql.types.StructType;
import scala.Option;
import scala.Product;
import scala.Tuple2;
import scala.collection.Iterator;
import scala.collection.immutable.Seq;

/**
 * A parser that delegates to Spark's (and Delta's) and refuses what a BI user must not run.
 *
 * <p>The check walks the parsed plan, where the statement is still what the user wrote: a
 * {@code LOCATION}, a {@code format.`path`} identifier or a {@code reflect(...)} call is visible
 * before any rule resolves it, reads a file or loads a class. Views are parsed again when they
 * are used ({@link #parseQuery}), {@code EXECUTE IMMEDIATE} parses its text with this parser,
 * and SQL scripts are plans whose statements the walk reaches too. Refused:
 *
 * <ul>
 *   <li>{@code ADD JAR | FILE | ARCHIVE}, {@code CREATE [TEMPORARY] FUNCTION}: loading code;
 *   <li>{@code reflect}, {@code java_method}, {@code try_reflect}: calling Java;
 *   <li>{@code SELECT TRANSFORM ... USING}: running a program on the server;
 *   <li>{@code LOAD DATA}, {@code INSERT OVERWRITE DIRECTORY}, {@code CREATE TEMPORARY VIEW ... USING},
 *       {@code CONVERT TO DELTA}, a {@code LOCATION} or {@code path} option on a table or database,
 *       {@code ALTER ... SET LOCATION}, {@code CLONE ... LOCATION}, a table or Delta command addressed by path: reading or
 *       writing files outside the warehouse (the server's secrets are files);
 *   <li>a table {@code USING} a source other than Delta or Parquet (JDBC and friends connect out);
 *   <li>{@code SET spark.sql.runSQLOnFiles}: switching the file guard back on.
 * </ul>
 */
public final class LockdownParser implements ParserInterface {
    private static final int MAX_NODES = 200_000;
    private static final Set<String> JAVA_FUNCTIONS = Set.of("reflect", "java_method", "try_reflect");
    private static final Set<String> PROVIDERS = Set.of("delta", "parquet");
    private static final Set<String> GUARDED_SETTINGS = Set.of("spark.sql.runsqlonfiles");
    private static final String FILES = "tables are read through the metastore, never by path";
    private static final Map<String, String[]> COMMANDS = Map.ofEntries(
        Map.entry("AddJarsCommand", new String[] {"ADD JAR", "it loads code into the server"}),
        Map.entry("AddFilesCommand", new String[] {"ADD FILE", "it copies files into the server"}),
        Map.entry("AddArchivesCommand", new String[] {"ADD ARCHIVE", "it copies files into the server"}),
        Map.entry("CreateFunction", new String[] {"CREATE FUNCTION", "it loads code into the server"}),
        Map.entry("CreateFunctionCommand", new String[] {"CREATE FUNCTION", "it loads code into the server"}),
        Map.entry("CreateUserDefinedFunction", new String[] {"CREATE FUNCTION", "it loads code into the server"}),
        Map.entry("ScriptTransformation", new String[] {"SELECT TRANSFORM", "it runs a program on the server"}),
        Map.entry("LoadData", new String[] {"LOAD DATA", FILES}),
        Map.entry("LoadDataCommand", new String[] {"LOAD DATA", FILES}),
        Map.entry("InsertIntoDir", new String[] {"INSERT OVERWRITE DIRECTORY", FILES}),
        Map.entry("InsertIntoDataSourceDirCommand", new String[] {"INSERT OVERWRITE DIRECTORY", FILES}),
        Map.entry("CreateTempViewUsing", new String[] {"CREATE TEMPORARY VIEW ... USING", FILES}),
        Map.entry("SetTableLocation", new String[] {"ALTER TABLE ... SET LOCATION", FILES}),
        Map.entry("SetNamespaceLocation", new String[] {"ALTER DATABASE ... SET LOCATION", FILES}),
        Map.entry("ConvertToDeltaCommand", new String[] {"CONVERT TO DELTA", FILES}),
        Map.entry("UnresolvedPathBasedDeltaTable", new String[] {"a Delta table addressed by path", FILES}),
        Map.entry("UnresolvedPathBasedTable", new String[] {"a table addressed by path", FILES}),
        Map.entry("UnresolvedPathBasedDeltaTableRelation", new String[] {"a Delta table addressed by path", FILES}));

    private final ParserInterface delegate;

    public LockdownParser(ParserInterface delegate) {
        this.delegate = delegate;
    }

    @Override
    public LogicalPlan parsePlan(String sqlText) throws ParseException {
        return checked(delegate.parsePlan(sqlText));
    }

    @Override
    public LogicalPlan parsePlanWithParameters(String sqlText, ParameterContext context) throws ParseException {
        return checked(delegate.parsePlanWithParameters(sqlText, context));
    }

    @Override
    public LogicalPlan parseQuery(String sqlText) throws ParseException {
        return checked(delegate.parseQuery(sqlText));
    }

    @Override
    public Expression parseExpression(String sqlText) throws ParseException {
        return checked(delegate.parseExpression(sqlText));
    }

    @Override
    public TableIdentifier parseTableIdentifier(String sqlText) throws ParseException {
        return delegate.parseTableIdentifier(sqlText);
    }

    @Override
    public FunctionIdentifier parseFunctionIdentifier(String sqlText) throws ParseException {
        return delegate.parseFunctionIdentifier(sqlText);
    }

    @Override
    public Seq<String> parseMultipartIdentifier(String sqlText) throws ParseException {
        return delegate.parseMultipartIdentifier(sqlText);
    }

    @Override
    public StructType parseRoutineParam(String sqlText) throws ParseException {
        return delegate.parseRoutineParam(sqlText);
    }

    @Override
    public StructType parseTableSchema(String sqlText) throws ParseException {
        return delegate.parseTableSchema(sqlText);
    }

    @Override
    public DataType parseDataType(String sqlText) throws ParseException {
        return delegate.parseDataType(sqlText);
    }

    private static <T> T checked(T root) {
        Deque<Object> pending = new ArrayDeque<>();
        Set<Object> seen = Collections.newSetFromMap(new IdentityHashMap<>());
        pending.push(root);
        int visited = 0;
        while (!pending.isEmpty() && visited++ < MAX_NODES) {
            Object node = pending.pop();
            if (node == null || !seen.add(node)) {
                continue;
            }
            refuseIfForbidden(node);
            if (node instanceof TreeNode<?> tree) {
                push(pending, tree.innerChildren().iterator());
            }
            if (node instanceof Product product) {
                push(pending, product.productIterator());
            } else if (node instanceof scala.collection.Iterable<?> iterable) {
                push(pending, iterable.iterator());
            }
        }
        return root;
    }

    private static void push(Deque<Object> pending, Iterator<?> items) {
        while (items.hasNext()) {
            Object item = items.next();
            if (item instanceof Product || item instanceof scala.collection.Iterable<?>) {
                pending.push(item);
            }
        }
    }

    private static void refuseIfForbidden(Object node) {
        String[] command = COMMANDS.get(node.getClass().getSimpleName());
        if (command != null) {
            throw new RefusedStatementException(command[0], command[1]);
        }
        if (node instanceof UnresolvedFunction function) {
            String name = function.nameParts().last().toLowerCase(Locale.ROOT);
            if (JAVA_FUNCTIONS.contains(name)) {
                throw new RefusedStatementException(name + "()", "it calls Java methods on the server");
            }
        } else if (node instanceof UnresolvedRelation relation) {
            Iterator<String> parts = relation.multipartIdentifier().iterator();
            while (parts.hasNext()) {
                if (looksLikePath(parts.next())) {
                    throw new RefusedStatementException("reading files by path (" + relation.name() + ")", FILES);
                }
            }
        } else if (node instanceof TableSpecBase spec) {
            if (spec.location().isDefined()) {
                throw new RefusedStatementException("LOCATION", FILES);
            }
            String provider = spec.provider().isDefined() ? spec.provider().get().toLowerCase(Locale.ROOT) : null;
            if (provider != null && !PROVIDERS.contains(provider)) {
                throw new RefusedStatementException("USING " + spec.provider().get(), "tables here are Delta (or Parquet)");
            }
        } else if (node instanceof OptionList options) {
            Iterator<Tuple2<String, Expression>> entries = options.options().iterator();
            while (entries.hasNext()) {
                if ("path".equalsIgnoreCase(entries.next()._1())) {
                    throw new RefusedStatementException("OPTIONS (path ...)", FILES);
                }
            }
        } else if (node instanceof CatalogStorageFormat storage) {
            if (storage.locationUri().isDefined()) {
                throw new RefusedStatementException("LOCATION", FILES);
            }
        } else if (node instanceof CreateNamespace namespace) {
            if (namespace.properties().contains("location")) {
                throw new RefusedStatementException("CREATE DATABASE ... LOCATION", FILES);
            }
        } else if (node instanceof SetCommand set) {
            Option<Tuple2<String, Option<String>>> kv = set.kv();
            if (kv.isDefined() && GUARDED_SETTINGS.contains(kv.get()._1().trim().toLowerCase(Locale.ROOT))) {
                throw new RefusedStatementException("SET " + kv.get()._1().trim(), "the server fixes this setting");
            }
        } else if (node.getClass().getSimpleName().contains("PathOrIdentifier") && defined(node, "path")) {
            throw new RefusedStatementException("a Delta command on a path", FILES);
        } else if (defined(node, "targetLocation")) {
            throw new RefusedStatementException("LOCATION", FILES);  // Delta's CREATE TABLE ... CLONE ... LOCATION
        }
    }

    private static boolean looksLikePath(String part) {
        return part.contains("/") || part.contains("\\") || part.contains(":");
    }

    /**
     * Whether a Delta plan's optional field is set: {@code path} of UnresolvedPathOrIdentifier and
     * UnresolvedDeltaPathOrIdentifier, {@code targetLocation} of CloneTableStatement (Delta's own
     * classes, looked up by name so that the module compiles against Spark's jars alone).
     */
    private static boolean defined(Object node, String field) {
        if (!(node instanceof LogicalPlan)) {
            return false;
        }
        try {
            Method getter = node.getClass().getMethod(field);
            return getter.invoke(node) instanceof Option<?> option && option.isDefined();
        } catch (ReflectiveOperationException e) {
            return false;
        }
    }
}
