using System.Runtime.ExceptionServices;
using System.Runtime.InteropServices;

namespace XenAoe.Os;

/// <summary>
/// Runs code of this process inside a named network namespace: a fresh thread joins the namespace with setns(2)
/// (which changes only the calling thread), runs the code and ends. Sockets opened there stay in that namespace
/// and can then be used from any thread, so one process can hold sockets of several lab hosts at once.
/// </summary>
public static class NetNamespace
{
    public static T Invoke<T>(string name, Func<T> action)
    {
        ArgumentNullException.ThrowIfNull(action);
        T result = default!;
        ExceptionDispatchInfo? error = null;
        var thread = new Thread(() =>
        {
            try
            {
                Enter(name);
                result = action();
            }
            catch (Exception e)
            {
                error = ExceptionDispatchInfo.Capture(e);
            }
        })
        {
            IsBackground = true,
            Name = $"netns {name}",
        };
        thread.Start();
        thread.Join();
        error?.Throw();
        return result;
    }

    public static void Invoke(string name, Action action) => Invoke(name, () =>
    {
        action();
        return true;
    });

    private static void Enter(string name)
    {
        var path = $"/run/netns/{name}";
        var fd = Interop.Open(path, Interop.OpenReadOnlyCloexec);
        if (fd < 0)
            throw new InvalidOperationException($"Cannot open network namespace {path}: {Marshal.GetLastPInvokeErrorMessage()}");
        try
        {
            if (Interop.SetNs(fd, Interop.CloneNewNet) != 0)
                throw new InvalidOperationException($"setns({path}) failed: {Marshal.GetLastPInvokeErrorMessage()}");
        }
        finally
        {
            Interop.Close(fd);
        }
    }
}
