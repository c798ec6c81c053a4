using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace SmpRobot.Tests.EndToEnd;

/// <summary>A real child process (smp or smp-controller) with its output collected line by line.</summary>
internal sealed class RealProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly Lock _gate = new();
    private readonly List<(Func<string, bool> Match, TaskCompletionSource<string> Done)> _waiters = [];

    private RealProcess(Process process) => _process = process;

    /// <summary>
    /// Build configuration of this test run (…/bin/CONFIG/net10.0/): the executables under test are
    /// the real build outputs of that configuration, exactly what ./smp and ./smp-controller run.
    /// </summary>
    private static string Configuration => new DirectoryInfo(Path.TrimEndingDirectorySeparator(AppContext.BaseDirectory)).Parent!.Name;

    public static string ExecutablePath(string exe) => Path.Combine(TestProfiles.RepoRoot, "src", exe == "smp" ? "Operator.Cli" : "Controller", "bin", Configuration, "net10.0", exe);

    /// <summary>Starts <paramref name="exe"/> (smp or smp-controller from the test output) with the project's hardware folder.</summary>
    public static RealProcess Start(string exe, params string[] args) => StartWith(null, exe, args);

    /// <summary>As <see cref="Start"/>, with <paramref name="environment"/> set in the child (e.g. its own TMPDIR).</summary>
    public static RealProcess StartWith(IReadOnlyDictionary<string, string>? environment, string exe, params string[] args)
    {
        var info = new ProcessStartInfo(exe.StartsWith('/') ? exe : ExecutablePath(exe))
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (var a in args) info.ArgumentList.Add(a);
        // A controller the tests start by name serves them on loopback in the development mode (a test of access
        // itself starts it by its path, with the flags it wants).
        if (exe == "smp-controller" && args.Length > 0 && args[0].StartsWith("--", StringComparison.Ordinal)) info.ArgumentList.Add("--insecure-loopback");
        info.Environment["SMP_HARDWARE_DIR"] = Path.Combine(TestProfiles.RepoRoot, "hardware");
        info.Environment["SMP_CONTROLLER_EXE"] = ExecutablePath("smp-controller");
        info.Environment.Remove("SMP_CONTROLLER");
        foreach (var (name, value) in environment ?? new Dictionary<string, string>()) info.Environment[name] = value;
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var rp = new RealProcess(process);
        process.OutputDataReceived += (_, e) => rp.OnLine(e.Data, rp._stdout);
        process.ErrorDataReceived += (_, e) => rp.OnLine(e.Data, rp._stderr);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return rp;
    }

    /// <summary>
    /// Starts <paramref name="exe"/> in a pseudo-terminal, as a user at a terminal runs it: util-linux's
    /// <c>script</c> (Debian's essential bsdutils) gives it the pty and forwards what <see cref="Press"/>
    /// writes as keys. Output lines arrive with the terminal's escape sequences removed.
    /// </summary>
    public static RealProcess StartInTerminal(string exe, params string[] args) => StartInTerminalWith(null, exe, args);

    /// <summary>As <see cref="StartInTerminal"/>, with <paramref name="environment"/> set in the child.</summary>
    public static RealProcess StartInTerminalWith(IReadOnlyDictionary<string, string>? environment, string exe, params string[] args)
    {
        var command = string.Join(' ', new[] { ExecutablePath(exe) }.Concat(args).Select(a => "'" + a.Replace("'", "'\\''", StringComparison.Ordinal) + "'"));
        var rp = StartWith(environment, "/usr/bin/script", "-qfec", command, "/dev/null");
        rp._stripTerminal = true;
        return rp;
    }

    /// <summary>Types <paramref name="keys"/> (into the terminal for <see cref="StartInTerminal"/>).</summary>
    public void Press(string keys)
    {
        _process.StandardInput.Write(keys);
        _process.StandardInput.Flush();
    }

    private bool _stripTerminal;

    public int Id => _process.Id;

    public string Stdout { get { lock (_gate) return string.Join("\n", _stdout); } }

    public string Stderr { get { lock (_gate) return string.Join("\n", _stderr); } }

    /// <summary>Waits for a line (stdout or stderr) that matches.</summary>
    public Task<string> WaitForLineAsync(Func<string, bool> match, TimeSpan timeout)
    {
        var done = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            var seen = _stdout.Concat(_stderr).FirstOrDefault(match);
            if (seen is not null) return Task.FromResult(seen);
            _waiters.Add((match, done));
        }
        return done.Task.WaitAsync(timeout);
    }

    /// <summary>Waits for the exit; returns the exit code. Throws TimeoutException with the output if it takes too long.</summary>
    public async Task<int> ExitCodeAsync(TimeSpan timeout)
    {
        try
        {
            await _process.WaitForExitAsync().WaitAsync(timeout);
        }
        catch (TimeoutException)
        {
            throw new TimeoutException($"{_process.StartInfo.FileName} did not exit within {timeout}; stdout:\n{Stdout}\nstderr:\n{Stderr}");
        }
#pragma warning disable CA1849 // the exit was awaited above: this returns once the redirected output is drained
        _process.WaitForExit();
#pragma warning restore CA1849
        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM (as systemd or Ctrl+C in a service manager would).</summary>
    public void Terminate() => _ = SysKill(_process.Id, 15);

    /// <summary>Sends SIGINT, as Ctrl+C in its terminal does.</summary>
    public void Interrupt() => _ = SysKill(_process.Id, 2);

    /// <summary>Kills the process at once (SIGKILL): a crash, as far as the ledger can tell.</summary>
    public void Crash() => _process.Kill();

    /// <summary>A free loopback port for a controller.</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    private void OnLine(string? line, List<string> into)
    {
        if (line is null) return;
        if (_stripTerminal)
        {
            // Escape sequences out; a carriage return starts the line again (the live view redraws in place).
            line = System.Text.RegularExpressions.Regex.Replace(line, "\u001b\\[[0-9;?]*[A-Za-z]|\u001b[()][A-Z0-9]|\u001b[=>]", "");
            foreach (var part in line.Split('\r')) OnTerminalLine(part, into);
            return;
        }
        OnTerminalLine(line, into);
    }

    private void OnTerminalLine(string line, List<string> into)
    {
        List<TaskCompletionSource<string>> hits = [];
        lock (_gate)
        {
            into.Add(line);
            foreach (var w in _waiters.Where(w => w.Match(line)).ToList())
            {
                hits.Add(w.Done);
                _waiters.Remove(w);
            }
        }
        foreach (var h in hits) h.TrySetResult(line);
    }

    [System.Runtime.InteropServices.DllImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static extern int SysKill(int pid, int signal);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
        }
        _process.Dispose();
    }
}
