using System.CommandLine;
using System.Runtime.InteropServices;
using Microsoft.Extensions.Logging.Console;
using SmpRobot.Controller.Gantry;
using SmpRobot.Controller.Gantry.Simulation;
using SmpRobot.Controller.Storage;

namespace SmpRobot.Controller;

/// <summary>smp-controller: the gRPC controller service.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        // Before any OpenCV call (see OpenCvRuntime.ConfigureIpp: IPP's CPUID checks trap on virtual machines).
        Vision.OpenCvRuntime.ConfigureIpp();
        var gantry = new Option<string>("--gantry") { Description = "Gantry link: sim (the simulated gantry, in-process), serial:PATH[@BAUD] (default baud 115200) or tcp:HOST:PORT", DefaultValueFactory = _ => "sim" };
        var profile = new Option<string?>("--profile") { Description = "Machine profile file (default: hardware/profiles/sim.json)" };
        var data = new Option<string?>("--data") { Description = "Directory for the durable ledger (default: ~/.local/state/smprobot)" };
        var store = StoreOption();
        var urls = new Option<string>("--urls") { Description = "Listen address (loopback by default)", DefaultValueFactory = _ => ControllerHost.DefaultUrl };
        var timeScale = new Option<double>("--time-scale") { Description = "Simulated seconds per wall second: the in-process simulator's speed-up, or for serial/tcp how fast the device's clock runs (1 on hardware)", DefaultValueFactory = _ => 1.0 };
        var camera = new Option<string?>("--camera")
        {
            Description = "Camera tracking the head: none (a fixed head: the profile's fixedHead), device:N[@WxH], file:PATH (video or image folder), "
                + "synthetic[:SCENARIO][@WxH] (still, drift, sway, jerk[:SECONDS], occlusion, blur, noise, lighting, lost). Default: the profile's tracking.camera. "
                + "A synthetic scene runs on the simulated clock: keep --time-scale low enough for tracking to keep up (1 at 720p on 2 cores), or sessions hold on stale poses",
        };
        var intrinsics = new Option<string?>("--intrinsics")
        {
            Description = "The camera's intrinsics as OpenCV's calibration file (cv::FileStorage YAML/JSON/XML with image_width, image_height, camera_matrix, distortion_coefficients). "
                + "Default: the newest valid `smp calibrate intrinsics` of this camera; a real camera without either tracks nothing",
        };
        var maxWatchesPerConnection = new Option<int>("--max-watches-per-connection") { Description = "Most session/machine watches on one HTTP/2 connection; more are refused with RESOURCE_EXHAUSTED", DefaultValueFactory = _ => Services.WatchLimiter.DefaultMaxPerConnection };
        var maxWatches = new Option<int>("--max-watches") { Description = "Most session/machine watches over all connections", DefaultValueFactory = _ => Services.WatchLimiter.DefaultMaxTotal };
        var simRecord = new Option<string?>("--record")
        {
            Description = "With --gantry sim: on exit (SIGTERM, Ctrl+C) write what the simulated gantry physically did (motions, real-time bytes, spindle) to this JSON file, as simulate --record does",
            HelpName = "FILE",
        };
        var simBoard = new Option<string?>("--sim-board")
        {
            Description = "With --gantry sim: where the board sits on the simulated head today against where the designs assume it: DX,DY,DZ,RX,RY,RZ "
                + "(mm and degrees, in the head frame; e.g. 4,-2,0,0,0,3). A person wears it a little elsewhere each session",
            HelpName = "OFFSET",
        };
        var simSkin = new Option<string?>("--sim-skin")
        {
            Description = "With --gantry sim: keep the simulated person's tattoos in FILE (read at start, added to as dots are placed), so a later session's camera sees the earlier dots",
            HelpName = "FILE",
        };
        var simAge = new Option<string?>("--sim-age")
        {
            Description = "With --sim-skin: the simulated person comes back years later: FADED,GONE are the fractions of the kept tattoos that faded or were lost "
                + "(e.g. 0.05,0.03; seeded, the same each run), as a touch-up meets them",
            HelpName = "FADED,GONE",
        };
        var insecureLoopback = new Option<bool>("--insecure-loopback")
        {
            Description = "Development and CI only: serve a loopback http address without TLS or authentication (every local caller may do everything). Without it every call needs a user's token",
        };
        var tlsCert = new Option<string?>("--tls-cert") { Description = "The chair's TLS certificate (PEM) for https:// addresses (smp-controller cert create makes one)", HelpName = "FILE" };
        var tlsKey = new Option<string?>("--tls-key") { Description = "Its private key (PEM)", HelpName = "FILE" };
        var root = new RootCommand("smp-controller: SmpRobot's controller (gRPC). Not a certified medical device; a hard-wired e-stop is required.")
        {
            gantry, profile, data, store, urls, timeScale, camera, intrinsics, maxWatchesPerConnection, maxWatches, simRecord, simBoard, simSkin, simAge, insecureLoopback, tlsCert, tlsKey,
        };
        root.SetAction(parse =>
        {
            try
            {
                var options = new ControllerOptions
                {
                    Gantry = parse.GetValue(gantry)!,
                    ProfilePath = parse.GetValue(profile) ?? HardwarePaths.DefaultProfile(),
                    DataDirectory = parse.GetValue(data) ?? DefaultDataDirectory(),
                    Store = parse.GetValue(store) is { } spec ? StoreLocation.Parse(spec) : null,
                    Urls = parse.GetValue(urls)!,
                    TimeScale = parse.GetValue(timeScale),
                    Camera = parse.GetValue(camera),
                    IntrinsicsPath = parse.GetValue(intrinsics),
                    MaxWatchesPerConnection = parse.GetValue(maxWatchesPerConnection),
                    MaxWatchesTotal = parse.GetValue(maxWatches),
                    InsecureLoopback = parse.GetValue(insecureLoopback),
                    TlsCertificatePath = parse.GetValue(tlsCert),
                    TlsKeyPath = parse.GetValue(tlsKey),
                    SimulatedBoardOffset = parse.GetValue(simBoard) is { } offset ? ParseBoardOffset(offset) : null,
                    SimulatedSkinFile = parse.GetValue(simSkin),
                    SimulatedSkinAge = parse.GetValue(simAge) is { } age ? ParseSkinAge(age) : null,
                };
                if (options.SimulatedSkinAge is not null && options.SimulatedSkinFile is null)
                {
                    throw new ArgumentException("--sim-age needs --sim-skin: it ages the tattoos kept there");
                }
                if ((options.SimulatedBoardOffset is not null || options.SimulatedSkinFile is not null) && !options.Gantry.Trim().Equals("sim", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ArgumentException("--sim-board and --sim-skin need --gantry sim: they describe the simulated person");
                }
                var recordPath = parse.GetValue(simRecord);
                if (recordPath is not null && !options.Gantry.Trim().Equals("sim", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ArgumentException("--record needs --gantry sim: only the in-process simulator knows what physically happened (for a device on a pty use smp-controller simulate --record)");
                }
                var app = ControllerHost.Build(options);
                // Taken before the host runs: its services are disposed when it stops.
                var simulator = recordPath is null ? null : app.Services.GetService(typeof(SimulatedGantry)) as SimulatedGantry;
                app.Run();
                if (recordPath is not null && simulator is not null) SimulationRecord.From(simulator).Write(recordPath);
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or FormatException)
            {
                Console.Error.WriteLine("smp-controller: " + e.Message);
                return 2;
            }
            catch (StoreUnavailableException e)
            {
                // Not started: nothing listens, nothing moves. The message names the server, never its password.
                Console.Error.WriteLine("smp-controller: not started: " + e.Message);
                return 3;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine("smp-controller: " + e.Message);
                return 1;
            }
        });
        root.Subcommands.Add(SimulateCommand());
        root.Subcommands.Add(AccessCommands.User(DefaultDataDirectory, StoreOption));
        root.Subcommands.Add(AccessCommands.Cert());
        return root.Parse(args).Invoke();
    }

    /// <summary>--store: where the record store is (the SQLite file under --data by default).</summary>
    internal static Option<string?> StoreOption() => new("--store")
    {
        Description = "The record store: sqlite:PATH, or postgres://user[:password]@host[:port]/database[?sslmode=...] for a PostgreSQL server the chairs of a clinic share. "
            + "Default: the SQLite file smp.db in --data",
        HelpName = "SPEC",
    };

    /// <summary>smp-controller simulate: the simulated gantry as a device on a pty (and optionally TCP).</summary>
    private static Command SimulateCommand()
    {
        var pty = new Option<string>("--pty") { Description = "Path of the symlink to the pseudo-terminal the device creates (open it like /dev/ttyUSB0)", Required = true };
        var tcp = new Option<int?>("--tcp") { Description = "Also accept one client at a time on 127.0.0.1:PORT (each connection resets the board)" };
        var profile = new Option<string?>("--profile") { Description = "Machine profile file (default: hardware/profiles/sim.json)" };
        var timeScale = new Option<double>("--time-scale") { Description = "Simulated seconds per wall second (the wire always runs in real time)", DefaultValueFactory = _ => 1.0 };
        var baud = new Option<int>("--baud") { Description = "Baud rate of the links: bytes are paced at 10 bits each", DefaultValueFactory = _ => SerialGantryTransport.DefaultBaud };
        var faults = new Option<string?>("--faults") { Description = "Fault-injection plan for the simulated gantry" };
        var record = new Option<string?>("--record") { Description = "On exit (SIGTERM, Ctrl+C) write what physically happened (motions, real-time bytes, spindle) to this JSON file" };
        var command = new Command("simulate", "Runs the simulated gantry as a device: grbl 1.1 on a pseudo-terminal at a real baud rate, until SIGTERM or Ctrl+C")
        {
            pty, tcp, profile, timeScale, baud, faults, record,
        };
        command.SetAction(parse =>
        {
            using var stop = new CancellationTokenSource();
            void OnSignal(PosixSignalContext context)
            {
                context.Cancel = true; // exit through the normal path, which writes the record
                stop.Cancel();
            }
            using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnSignal);
            using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnSignal);
            using var logs = LoggerFactory.Create(b => b
                .AddSimpleConsole(o => o.SingleLine = true)
                .AddConsole(o => o.LogToStandardErrorThreshold = LogLevel.Trace));
            try
            {
                var options = new SimulatorRunOptions
                {
                    PtyPath = parse.GetValue(pty)!,
                    TcpPort = parse.GetValue(tcp),
                    ProfilePath = parse.GetValue(profile) ?? HardwarePaths.DefaultProfile(),
                    TimeScale = parse.GetValue(timeScale),
                    Baud = parse.GetValue(baud),
                    Faults = parse.GetValue(faults),
                    RecordPath = parse.GetValue(record),
                };
                return SimulatorCommand.RunAsync(options, Console.Out, logs, stop.Token).GetAwaiter().GetResult();
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException)
            {
                Console.Error.WriteLine("smp-controller simulate: " + e.Message);
                return 2;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine("smp-controller simulate: " + e.Message);
                return 1;
            }
        });
        return command;
    }

    /// <summary>"DX,DY,DZ,RX,RY,RZ" (mm, degrees) as a transform in H; a clear error otherwise.</summary>
    internal static Geometry.RigidTransform ParseBoardOffset(string text)
    {
        var parts = text.Split(',');
        var values = new double[parts.Length];
        if (parts.Length != 6 || !parts.Select((p, i) => double.TryParse(p.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i]) && double.IsFinite(values[i])).All(ok => ok))
        {
            throw new ArgumentException($"--sim-board '{text}': give DX,DY,DZ,RX,RY,RZ (mm and degrees), e.g. 4,-2,0,0,0,3");
        }
        const double Deg = Math.PI / 180;
        return Geometry.Rotations.FromMatrix(Geometry.Rotations.MatrixFromVector(new Geometry.Vec3(values[3] * Deg, values[4] * Deg, values[5] * Deg)), new Geometry.Vec3(values[0], values[1], values[2]));
    }

    /// <summary>"FADED,GONE" (fractions 0-1, together at most 1); a clear error otherwise.</summary>
    internal static (double Faded, double Gone) ParseSkinAge(string text)
    {
        var parts = text.Split(',');
        var values = new double[parts.Length];
        if (parts.Length != 2 || !parts.Select((p, i) => double.TryParse(p.Trim(), System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out values[i]) && values[i] is >= 0 and <= 1).All(ok => ok)
            || values[0] + values[1] > 1)
        {
            throw new ArgumentException($"--sim-age '{text}': give FADED,GONE, fractions 0-1 of the kept tattoos that together are at most 1, e.g. 0.05,0.03");
        }
        return (values[0], values[1]);
    }

    internal static string DefaultDataDirectory()
    {
        var state = Environment.GetEnvironmentVariable("XDG_STATE_HOME");
        if (string.IsNullOrEmpty(state))
        {
            state = Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".local", "state");
        }
        return Path.Combine(state, "smprobot");
    }
}

/// <summary>Finds the bundled hardware/ folder: SMP_HARDWARE_DIR, else up from the executable.</summary>
public static class HardwarePaths
{
    public static string HardwareDirectory()
    {
        var fromEnv = Environment.GetEnvironmentVariable("SMP_HARDWARE_DIR");
        if (!string.IsNullOrEmpty(fromEnv)) return fromEnv;
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            var candidate = Path.Combine(dir.FullName, "hardware", "profiles");
            if (Directory.Exists(candidate)) return Path.Combine(dir.FullName, "hardware");
        }
        throw new InvalidDataException("cannot find the hardware/ folder; set SMP_HARDWARE_DIR or pass --profile");
    }

    public static string DefaultProfile() => Path.Combine(HardwareDirectory(), "profiles", "sim.json");
}
