using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Grpc.Core;
using SmpRobot.Contracts.V1;

namespace SmpRobot.Operator.Cli;

/// <summary>
/// A child <c>smp-controller</c> process for <c>smp demo</c>: started with its output in a log file, awaited until
/// it answers, and stopped with SIGTERM (bounded wait, SIGKILL fallback).
/// </summary>
internal sealed partial class ControllerProcess : IAsyncDisposable
{
    private const int SigTerm = 15;
    private static readonly TimeSpan StopTimeout = TimeSpan.FromSeconds(10);

    private readonly Process process;
    private readonly StreamWriter log;
    private readonly Lock logGate = new();

    private ControllerProcess(Process process, StreamWriter log, string logPath)
    {
        this.process = process;
        this.log = log;
        LogPath = logPath;
    }

    /// <summary>Where the controller's stdout and stderr go.</summary>
    public string LogPath { get; }

    public bool HasExited => process.HasExited;

    /// <summary>The controller process (id and start time), for the demo folder's marker.</summary>
    public DemoProcess Identity => DemoProcess.Of(process);

    /// <summary>
    /// The controller executable: $SMP_CONTROLLER_EXE, else <c>smp-controller</c> next to <c>smp</c>; null when neither exists.
    /// </summary>
    public static string? FindExecutable(CliHost host)
    {
        var fromEnv = host.GetEnvironmentVariable("SMP_CONTROLLER_EXE");
        if (!string.IsNullOrWhiteSpace(fromEnv)) return fromEnv;
        var beside = Path.Combine(host.BaseDirectory, "smp-controller");
        return File.Exists(beside) ? beside : null;
    }

    /// <summary>Throws (exit 1) when something already listens on the URL's port, so the demo never talks to a stranger.</summary>
    public static void EnsurePortFree(Uri url)
    {
        IPAddress? address = url.IsLoopback && !IPAddress.TryParse(url.Host, out _) ? IPAddress.Loopback
            : IPAddress.TryParse(url.Host.Trim('[', ']'), out var parsed) ? parsed : null;
        if (address is null) return; // a host name: let the controller report a bind failure
        using var listener = new TcpListener(address, url.Port);
        try
        {
            listener.Start();
        }
        catch (SocketException e)
        {
            throw new CliException(ExitCodes.Failure,
                $"port {url.Port} on {url.Host} is taken ({e.SocketErrorCode}): is another smp-controller running? Stop it, or pass --controller http://127.0.0.1:OTHER_PORT");
        }
    }

    /// <summary>Starts <paramref name="executable"/> with <paramref name="arguments"/>, output to <paramref name="logPath"/>.</summary>
    public static ControllerProcess Start(string executable, IEnumerable<string> arguments, string logPath)
    {
        var info = new ProcessStartInfo(executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = false,
            UseShellExecute = false,
        };
        foreach (var a in arguments) info.ArgumentList.Add(a);
        var log = new StreamWriter(logPath, append: false) { AutoFlush = true };
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var result = new ControllerProcess(process, log, logPath);
        process.OutputDataReceived += (_, e) => result.Log(e.Data);
        process.ErrorDataReceived += (_, e) => result.Log(e.Data);
        try
        {
            process.Start();
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            log.Dispose();
            process.Dispose();
            throw new CliException(ExitCodes.Failure, $"cannot start the controller {executable}: {e.Message}");
        }
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return result;
    }

    private void Log(string? line)
    {
        if (line is null) return;
        lock (logGate)
        {
            try
            {
                log.WriteLine(line);
            }
            catch (ObjectDisposedException)
            {
                // Output after we closed the log: nothing to keep.
            }
            catch (IOException)
            {
                // The log file cannot be written (disk full, removed): the line is lost, never the process (this runs on
                // the output reader's callback, where an exception would end smp).
            }
        }
    }

    /// <summary>
    /// Polls SafetyService.GetSafetyStatus (short deadline) until the controller answers, within <paramref name="timeout"/>.
    /// Throws (exit 1) if the process exits first or time runs out, pointing at the log.
    /// </summary>
    public async Task WaitUntilReadyAsync(ControllerConnection conn, TimeProvider time, TimeSpan timeout, CancellationToken ct)
    {
        var start = time.GetTimestamp();
        RpcException? last = null;
        while (true)
        {
            if (process.HasExited) throw ExitedEarly();
            try
            {
                await conn.Safety.GetSafetyStatusAsync(new GetSafetyStatusRequest(), deadline: conn.Deadline(TimeSpan.FromSeconds(1)), cancellationToken: ct).ConfigureAwait(false);
                if (process.HasExited) throw ExitedEarly();
                return;
            }
            catch (RpcException e) when (e.StatusCode is StatusCode.Unavailable or StatusCode.DeadlineExceeded or StatusCode.Internal)
            {
                last = e;
            }
            if (time.GetElapsedTime(start) > timeout)
            {
                throw new CliException(ExitCodes.Failure, string.Format(CultureInfo.InvariantCulture,
                    "the controller did not answer at {0} within {1:0} s ({2}); its log: {3}", conn.Address, timeout.TotalSeconds, last?.Status.Detail, LogPath));
            }
            await Task.Delay(TimeSpan.FromMilliseconds(200), time, ct).ConfigureAwait(false);
        }
    }

    private CliException ExitedEarly()
    {
        process.WaitForExit(1000); // let the output handlers drain into the log
        var tail = Tail();
        var portTaken = tail.Contains("address already in use", StringComparison.OrdinalIgnoreCase);
        return new CliException(ExitCodes.Failure,
            $"the controller exited (code {process.ExitCode}) before answering{(portTaken ? ": its port is taken (another controller running?)" : "")}; its log: {LogPath}"
            + (tail.Length > 0 ? Environment.NewLine + tail : ""));
    }

    private string Tail()
    {
        try
        {
            lock (logGate) log.Flush();
            var lines = File.ReadAllLines(LogPath);
            return string.Join(Environment.NewLine, lines.Skip(Math.Max(0, lines.Length - 15)));
        }
        catch (IOException)
        {
            return "";
        }
    }

    /// <summary>SIGTERM, wait up to 10 s, then SIGKILL. Returns the exit code (or null if unknown).</summary>
    public async Task<int?> StopAsync()
    {
        if (!process.HasExited)
        {
            _ = Kill(process.Id, SigTerm);
            using var cts = new CancellationTokenSource(StopTimeout);
            try
            {
                await process.WaitForExitAsync(cts.Token).ConfigureAwait(false);
            }
            catch (OperationCanceledException)
            {
                process.Kill(entireProcessTree: true);
                await process.WaitForExitAsync().WaitAsync(StopTimeout).ConfigureAwait(false);
            }
        }
        return process.HasExited ? process.ExitCode : null;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopAsync().ConfigureAwait(false);
        }
        catch (Exception e) when (e is InvalidOperationException or TimeoutException or System.ComponentModel.Win32Exception)
        {
            // Best effort: the process is gone or cannot be signalled.
        }
        lock (logGate) log.Dispose();
        process.Dispose();
    }

    [LibraryImport("libc", EntryPoint = "kill", SetLastError = true)]
    private static partial int Kill(int pid, int signal);
}
