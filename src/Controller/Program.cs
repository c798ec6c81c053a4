using System.CommandLine;

namespace SmpRobot.Controller;

/// <summary>smp-controller: the gRPC controller service.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        var gantry = new Option<string>("--gantry") { Description = "Gantry link: sim (the simulated gantry, in-process)", DefaultValueFactory = _ => "sim" };
        var profile = new Option<string?>("--profile") { Description = "Machine profile file (default: hardware/profiles/sim.json)" };
        var data = new Option<string?>("--data") { Description = "Directory for the durable ledger (default: ~/.local/state/smprobot)" };
        var urls = new Option<string>("--urls") { Description = "Listen address (loopback by default)", DefaultValueFactory = _ => ControllerHost.DefaultUrl };
        var timeScale = new Option<double>("--time-scale") { Description = "Simulator speed-up: simulated seconds per wall second", DefaultValueFactory = _ => 1.0 };
        var root = new RootCommand("smp-controller: SmpRobot's controller (gRPC). Not a certified medical device; a hard-wired e-stop is required.")
        {
            gantry, profile, data, urls, timeScale,
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
                    Urls = parse.GetValue(urls)!,
                    TimeScale = parse.GetValue(timeScale),
                };
                var app = ControllerHost.Build(options);
                app.Run();
                return 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException)
            {
                Console.Error.WriteLine("smp-controller: " + e.Message);
                return 2;
            }
            catch (IOException e)
            {
                Console.Error.WriteLine("smp-controller: " + e.Message);
                return 1;
            }
        });
        return root.Parse(args).Invoke();
    }

    private static string DefaultDataDirectory()
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
