using System.Globalization;
using Npgsql;

namespace SmpRobot.Controller.Storage;

/// <summary>
/// Where the ledger lives: an embedded SQLite file (the default, one chair), or a PostgreSQL database that the chairs of
/// a clinic share (a client can then come back to any chair). Parsed from the controller's <c>--store</c> option:
/// <c>sqlite:PATH</c> or <c>postgres://user[:password]@host[:port]/database[?sslmode=…]</c>.
/// </summary>
public sealed class StoreLocation
{
    /// <summary>Seconds to wait for a PostgreSQL connection before the store says it is unreachable (Npgsql's default is 15).</summary>
    public const int DefaultConnectTimeoutSeconds = 5;

    /// <summary>Seconds a PostgreSQL command may take before the store says the server is unreachable (Npgsql's default is 30).</summary>
    public const int DefaultCommandTimeoutSeconds = 15;

    private StoreLocation(string? sqlitePath, string? connectionString, string display)
    {
        SqlitePath = sqlitePath;
        ConnectionString = connectionString;
        Display = display;
    }

    /// <summary>The SQLite file, or null for PostgreSQL.</summary>
    public string? SqlitePath { get; }

    /// <summary>The Npgsql connection string (holds the password when one was given: never log it), or null for SQLite.</summary>
    public string? ConnectionString { get; }

    /// <summary>What to show people and logs: the file, or <c>postgres://user@host:port/database</c> (never a password).</summary>
    public string Display { get; }

    /// <summary>A PostgreSQL database.</summary>
    public bool IsPostgres => ConnectionString is not null;

    /// <inheritdoc/>
    public override string ToString() => Display;

    /// <summary>The SQLite file at <paramref name="path"/>.</summary>
    public static StoreLocation Sqlite(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        return new StoreLocation(path, null, Path.GetFullPath(path));
    }

    /// <summary>
    /// Parses <c>sqlite:PATH</c> or <c>postgres://user[:password]@host[:port]/database[?sslmode=…&amp;…]</c> (also
    /// <c>postgresql://</c>). User, password and database may be percent-encoded. Query keys other than sslmode are
    /// Npgsql connection-string keywords (e.g. <c>timeout</c>, <c>command timeout</c>).
    /// </summary>
    /// <exception cref="FormatException">The text is neither (the message never repeats a password).</exception>
    public static StoreLocation Parse(string spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        if (spec.StartsWith("sqlite:", StringComparison.Ordinal))
        {
            var path = spec["sqlite:".Length..];
            if (path.Length == 0) throw new FormatException("--store sqlite:PATH needs a path");
            return Sqlite(path);
        }
        if (!spec.StartsWith("postgres://", StringComparison.Ordinal) && !spec.StartsWith("postgresql://", StringComparison.Ordinal))
        {
            throw new FormatException("--store takes sqlite:PATH or postgres://user[:password]@host[:port]/database[?sslmode=...]");
        }
        if (!Uri.TryCreate(spec, UriKind.Absolute, out var uri) || string.IsNullOrEmpty(uri.Host))
        {
            throw new FormatException("--store: not a postgres://user[:password]@host[:port]/database address");
        }
        var builder = new NpgsqlConnectionStringBuilder
        {
            Host = uri.Host.Trim('[', ']'),
            Port = uri.IsDefaultPort || uri.Port < 0 ? 5432 : uri.Port,
            Timeout = DefaultConnectTimeoutSeconds,
            CommandTimeout = DefaultCommandTimeoutSeconds,
            ApplicationName = "smp-controller",
            // The store keeps one connection and opens a new one itself after a failure: a pool would hand back
            // connections that died with a restarted server.
            Pooling = false,
        };
        var user = "";
        if (uri.UserInfo.Length > 0)
        {
            var colon = uri.UserInfo.IndexOf(':', StringComparison.Ordinal);
            user = Uri.UnescapeDataString(colon < 0 ? uri.UserInfo : uri.UserInfo[..colon]);
            builder.Username = user;
            if (colon >= 0) builder.Password = Uri.UnescapeDataString(uri.UserInfo[(colon + 1)..]);
        }
        var database = Uri.UnescapeDataString(uri.AbsolutePath.TrimStart('/'));
        if (database.Length == 0 || database.Contains('/', StringComparison.Ordinal))
        {
            throw new FormatException("--store: postgres://… needs one database name after the host, e.g. postgres://smp@db.clinic.lan/smp");
        }
        builder.Database = database;
        foreach (var pair in uri.Query.TrimStart('?').Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = pair.IndexOf('=', StringComparison.Ordinal);
            var key = Uri.UnescapeDataString(eq < 0 ? pair : pair[..eq]);
            var value = eq < 0 ? "" : Uri.UnescapeDataString(pair[(eq + 1)..]);
            try
            {
                if (key.Equals("sslmode", StringComparison.OrdinalIgnoreCase))
                {
                    builder.SslMode = Enum.Parse<SslMode>(value.Replace("-", "", StringComparison.Ordinal), ignoreCase: true);
                }
                else if (key.Equals("password", StringComparison.OrdinalIgnoreCase))
                {
                    throw new FormatException("--store: give the password in the address's user part, not as a query parameter");
                }
                else
                {
                    builder[key] = value;
                }
            }
            catch (Exception e) when (e is ArgumentException or KeyNotFoundException)
            {
                throw new FormatException($"--store: '{key}={value}' is not a PostgreSQL connection setting ({e.Message})", e);
            }
        }
        var host = uri.HostNameType == UriHostNameType.IPv6 ? "[" + builder.Host + "]" : builder.Host;
        var display = string.Create(CultureInfo.InvariantCulture, $"postgres://{(user.Length > 0 ? Uri.EscapeDataString(user) + "@" : "")}{host}:{builder.Port}/{Uri.EscapeDataString(database)}");
        return new StoreLocation(null, builder.ConnectionString, display);
    }
}

/// <summary>
/// The record store (a PostgreSQL server) could not be reached or stopped answering during a call. Nothing of the call
/// was committed, unless the failure cut off its commit: a caller that must know reads the state back once the store
/// answers again. The message names the server, never a password; the next call connects again.
/// </summary>
public sealed class StoreUnavailableException : Exception
{
    /// <summary>A store call failed because <paramref name="store"/> is unreachable.</summary>
    public StoreUnavailableException(string store, Exception cause)
        : base($"record store unreachable: {store}: {cause?.Message}", cause)
    {
        Store = store;
    }

    /// <summary>The store as shown to people (<see cref="StoreLocation.Display"/>).</summary>
    public string Store { get; } = "";

    public StoreUnavailableException()
    {
    }

    public StoreUnavailableException(string message)
        : base(message)
    {
    }
}
