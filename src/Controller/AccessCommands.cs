using System.CommandLine;
using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using SmpRobot.Controller.Security;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller;

/// <summary>smp-controller user … and cert …: set up a chair's access on the chair itself (no controller needs to run).</summary>
internal static class AccessCommands
{
    /// <summary>smp-controller user add|list|revoke on the store in --data.</summary>
    public static Command User(Func<string> defaultDataDirectory, Func<Option<string?>> storeOption)
    {
        var data = new Option<string?>("--data") { Description = "Directory of the controller's store (default: ~/.local/state/smprobot)" };
        var store = storeOption();
        var name = new Argument<string>("NAME") { Description = "The user's name: letters, digits and . _ @ -" };
        var role = new Option<string>("--role") { Description = "observer, operator, engineer or admin", Required = true };
        var add = new Command("add", "Adds a user and prints its access token, once (the store keeps only its SHA-256). A running controller sees it within a second") { name, role, data, store };
        add.SetAction(parse => Run(() =>
        {
            using var ledger = Open(parse.GetValue(data) ?? defaultDataDirectory(), parse.GetValue(store));
            var (user, token) = UserAccounts.Add(ledger, parse.GetValue(name)!, Roles.Parse(parse.GetValue(role)!), "smp-controller user add on " + Environment.MachineName);
            Console.Error.WriteLine($"user {user.Name} ({user.Role}) added. Its token, shown this once: keep it in a file only its user can read (chmod 600) and use it with SMP_TOKEN or smp --token-file FILE:");
            Console.WriteLine(token);
        }));
        var revokeName = new Argument<string>("NAME") { Description = "The user whose token stops working" };
        var revoke = new Command("revoke", "Revokes a user's token (a running controller refuses it within a second)") { revokeName, data, store };
        revoke.SetAction(parse => Run(() =>
        {
            using var ledger = Open(parse.GetValue(data) ?? defaultDataDirectory(), parse.GetValue(store));
            var who = parse.GetValue(revokeName)!;
            if (!ledger.RevokeUser(who)) throw new ArgumentException($"no active user '{who}'");
            Console.WriteLine($"user {who} revoked");
        }));
        var list = new Command("list", "Lists the users (never their tokens)") { data, store };
        list.SetAction(parse => Run(() =>
        {
            using var ledger = Open(parse.GetValue(data) ?? defaultDataDirectory(), parse.GetValue(store));
            foreach (var u in ledger.ListUsers())
            {
                Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{u.Name,-24} {u.Role,-9} added {u.CreatedAt:yyyy-MM-dd HH:mm} by {u.CreatedBy}{(u.RevokedAt is { } r ? $"; REVOKED {r:yyyy-MM-dd HH:mm}" : "")}"));
            }
        }));
        return new Command("user", "The users who may call this chair's controller, and their roles") { add, revoke, list };
    }

    /// <summary>smp-controller cert create: the chair's TLS certificate and key (self-signed), and a CSR for a clinic's CA.</summary>
    public static Command Cert()
    {
        var outDir = new Option<string>("--out") { Description = "Directory for chair.crt, chair.key (mode 600) and chair.csr", Required = true };
        var hosts = new Option<string[]>("--host") { Description = "A name or address clients use to reach the chair (repeatable); localhost, 127.0.0.1 and ::1 are always in", AllowMultipleArgumentsPerToken = true };
        var days = new Option<int>("--days") { Description = "Validity of the self-signed certificate", DefaultValueFactory = _ => 730 };
        var create = new Command("create", "Creates the chair's key, a self-signed certificate (clients pin it with smp --ca chair.crt) and a signing request for the clinic's CA") { outDir, hosts, days };
        create.SetAction(parse => Run(() =>
        {
            var dir = Directory.CreateDirectory(parse.GetValue(outDir)!).FullName;
            var chair = ChairCertificate.Create(parse.GetValue(hosts) ?? [], parse.GetValue(days));
            var keyPath = Path.Combine(dir, "chair.key");
            File.Delete(keyPath); // a new file, so the mode below applies; CreateNew fails rather than follow whatever appears there meanwhile
            // Created 0600 before the key is written into it, so it is never readable by others, even for a moment.
#pragma warning disable CA1416 // the controller runs on Linux only (ptys, libgpiod): Unix file modes exist
            using (var keyFile = new FileStream(keyPath, new FileStreamOptions { Mode = FileMode.CreateNew, Access = FileAccess.Write, UnixCreateMode = UnixFileMode.UserRead | UnixFileMode.UserWrite }))
#pragma warning restore CA1416
            using (var writer = new StreamWriter(keyFile))
            {
                writer.Write(chair.KeyPem);
            }
            File.WriteAllText(Path.Combine(dir, "chair.crt"), chair.CertificatePem);
            File.WriteAllText(Path.Combine(dir, "chair.csr"), chair.SigningRequestPem);
            Console.WriteLine($"wrote {dir}/chair.crt, chair.key (mode 600) and chair.csr. Start the controller with --urls https://HOST:PORT --tls-cert {dir}/chair.crt --tls-key {dir}/chair.key; "
                + "give clients chair.crt (smp --ca FILE or SMP_CA), or have the clinic's CA sign chair.csr and use its certificate instead");
        }));
        return new Command("cert", "The chair's TLS certificate") { create };
    }

    private static LedgerStore Open(string dataDirectory, string? store) =>
        new(store is null ? Storage.StoreLocation.Sqlite(Path.Combine(dataDirectory, "smp.db")) : Storage.StoreLocation.Parse(store), TimeProvider.System);

    private static int Run(Action action)
    {
        try
        {
            action();
            return 0;
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or InvalidDataException or IOException or UnauthorizedAccessException or FormatException)
        {
            Console.Error.WriteLine("smp-controller: " + e.Message);
            return 2;
        }
        catch (StoreUnavailableException e)
        {
            Console.Error.WriteLine("smp-controller: " + e.Message);
            return 3;
        }
    }
}
