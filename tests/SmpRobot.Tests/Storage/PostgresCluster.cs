using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Npgsql;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Tests.Storage;

/// <summary>
/// A private PostgreSQL cluster for tests: initdb into a temporary folder, the server on a free loopback port (never
/// 5432) with its socket in that folder and trust authentication on 127.0.0.1, stopped and deleted when the test
/// process ends (<see cref="Shared"/>) or when disposed. Every test asks for its own database. A test that stops and
/// starts the server mid-test (<see cref="Stop"/>, <see cref="Start"/>) takes a cluster of its own (<see cref="StartPrivate"/>).
/// PostgreSQL refuses to run as root: as root, the cluster runs as the <c>postgres</c> system user (runuser).
/// Nothing is skipped: without PostgreSQL's server binaries this fails and says to run ./build.sh, which installs them.
/// </summary>
internal sealed class PostgresCluster : IDisposable
{
    private static readonly Lazy<PostgresCluster> SharedCluster = new(() =>
    {
        var cluster = StartPrivate();
        AppDomain.CurrentDomain.ProcessExit += (_, _) => cluster.Dispose();
        return cluster;
    });

    private readonly string _dir;
    private readonly string _bin;
    private bool _disposed;

    private PostgresCluster(string dir, string bin, int port)
    {
        (_dir, _bin, Port) = (dir, bin, port);
    }

    /// <summary>The cluster of this test run (started on first use, stopped at exit). Never stop it: other tests use it.</summary>
    public static PostgresCluster Shared => SharedCluster.Value;

    /// <summary>The loopback port it listens on.</summary>
    public int Port { get; }

    private string DataDir => Path.Combine(_dir, "data");

    private static bool IsRoot => Environment.UserName == "root";

    /// <summary>Creates and starts a cluster of its own.</summary>
    public static PostgresCluster StartPrivate()
    {
        var bin = FindBinaries();
        RemoveAbandoned(bin);
        var dir = Directory.CreateTempSubdirectory("smp-pg-").FullName;
        File.WriteAllText(Path.Combine(dir, "owner.pid"), Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Directory.CreateDirectory(Path.Combine(dir, "sock"));
        if (IsRoot) Run("chown", ["-R", "postgres:postgres", dir], asPostgres: false);
        var cluster = new PostgresCluster(dir, bin, FreePort());
        cluster.Pg("initdb", "-D", cluster.DataDir, "-U", "postgres", "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync");
        cluster.Start();
        return cluster;
    }

    /// <summary>Starts the server (again), waiting until it accepts connections.</summary>
    public void Start() =>
        Pg("pg_ctl", "-D", DataDir, "-l", Path.Combine(_dir, "server.log"), "-w", "-t", "60", "start", "-o",
            string.Create(CultureInfo.InvariantCulture, $"-p {Port} -k {Path.Combine(_dir, "sock")} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"));

    /// <summary>Stops the server (fast shutdown: open connections are cut, as in a restart of the server).</summary>
    public void Stop() => Pg("pg_ctl", "-D", DataDir, "-w", "-t", "60", "stop", "-m", "fast");

    /// <summary>A new empty database of its own, as the store's location (no password: trust on loopback).</summary>
    public StoreLocation CreateDatabase()
    {
        var name = "t_" + Guid.NewGuid().ToString("N");
        using (var admin = new NpgsqlConnection(string.Create(CultureInfo.InvariantCulture, $"Host=127.0.0.1;Port={Port};Username=postgres;Database=postgres;Pooling=false")))
        {
            admin.Open();
            using var cmd = admin.CreateCommand();
            cmd.CommandText = $"CREATE DATABASE {name}";
            cmd.ExecuteNonQuery();
        }
        return StoreLocation.Parse(string.Create(CultureInfo.InvariantCulture, $"postgres://postgres@127.0.0.1:{Port}/{name}"));
    }

    /// <summary>Runs SQL on a database of this cluster outside any store (another client's view).</summary>
    public static NpgsqlConnection Connect(StoreLocation location)
    {
        var c = new NpgsqlConnection(location.ConnectionString);
        c.Open();
        return c;
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try
        {
            Pg("pg_ctl", "-D", DataDir, "-w", "stop", "-m", "immediate");
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }
        try
        {
            Directory.Delete(_dir, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private void Pg(string tool, params string[] args) => Run(Path.Combine(_bin, tool), args, IsRoot);

    private static void Run(string file, string[] args, bool asPostgres)
    {
        var psi = new ProcessStartInfo(asPostgres ? "runuser" : file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (asPostgres)
        {
            foreach (var a in new[] { "-u", "postgres", "--", file }) psi.ArgumentList.Add(a);
        }
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var p = Process.Start(psi)!;
        // pg_ctl start leaves the server holding the pipes: read them asynchronously, wait for the tool only.
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        if (!p.WaitForExit(TimeSpan.FromSeconds(120)))
        {
            p.Kill(entireProcessTree: false);
            throw new InvalidOperationException($"{Path.GetFileName(file)} did not finish in 120 s");
        }
        if (p.ExitCode != 0)
        {
            var err = stderr.IsCompleted ? stderr.Result : "";
            var output = stdout.IsCompleted ? stdout.Result : "";
            throw new InvalidOperationException($"{Path.GetFileName(file)} {string.Join(' ', args)} failed ({p.ExitCode}): {err}{output}");
        }
    }

    /// <summary>The server binaries: pg_config's bindir when it has initdb, else the newest /usr/lib/postgresql/*/bin.</summary>
    private static string FindBinaries()
    {
        try
        {
            var psi = new ProcessStartInfo("pg_config", "--bindir") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
            using var p = Process.Start(psi)!;
            var dir = p.StandardOutput.ReadToEnd().Trim();
            p.WaitForExit();
            if (p.ExitCode == 0 && File.Exists(Path.Combine(dir, "initdb"))) return dir;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            // No pg_config: look where Debian puts the server.
        }
        var found = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql")
                .Select(d => Path.Combine(d, "bin"))
                .Where(d => File.Exists(Path.Combine(d, "initdb")))
                .OrderByDescending(d => int.TryParse(Path.GetFileName(Path.GetDirectoryName(d)), out var v) ? v : 0)
                .FirstOrDefault()
            : null;
        return found ?? throw new InvalidOperationException(
            "PostgreSQL's server is not installed (no initdb in `pg_config --bindir` or /usr/lib/postgresql/*/bin): run ./build.sh, which installs Debian's postgresql package; the tests skip nothing without it");
    }

    private static int FreePort()
    {
        // The kernel's choice among free ephemeral ports: never 5432, never one in use.
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        return ((IPEndPoint)probe.LocalEndpoint).Port;
    }

    /// <summary>Clusters of earlier test runs whose process died before stopping them: stopped and deleted.</summary>
    private static void RemoveAbandoned(string bin)
    {
        foreach (var dir in Directory.GetDirectories(Path.GetTempPath(), "smp-pg-*"))
        {
            var owner = Path.Combine(dir, "owner.pid");
            if (!File.Exists(owner) || !int.TryParse(File.ReadAllText(owner), out var pid) || Directory.Exists($"/proc/{pid}")) continue;
            try
            {
                if (File.Exists(Path.Combine(dir, "data", "postmaster.pid"))) Run(Path.Combine(bin, "pg_ctl"), ["-D", Path.Combine(dir, "data"), "-w", "stop", "-m", "immediate"], IsRoot);
            }
            catch (InvalidOperationException)
            {
            }
            try
            {
                Directory.Delete(dir, recursive: true);
            }
            catch (IOException)
            {
            }
        }
    }
}
