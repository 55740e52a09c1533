#!/bin/sh
# Runs one git task inside the guest (agent-vm's GitTaskRunner). Inputs come as environment:
#   AGENTVM_GIT_BASE    commit the work starts from (in /workspace/input/.agentvm-git/base.bundle)
#   AGENTVM_AGENT_CMD   the agent's shell command, run in the repository
#   AGENTVM_AGENT_SECS  the agent's time limit
#   AGENTVM_GIT_DIRTY   fail | commit: what to do with uncommitted changes
#   AGENTVM_GIT_NAME / AGENTVM_GIT_EMAIL   the author of commits made here
# Results go to /workspace/output/.agentvm-git/: agent-exit, head, dirty, uncommitted.patch,
# result.bundle. The dirty check runs here, before the VM (and its disk) is torn down.
out=/workspace/output/.agentvm-git
# the work tree lives in guest RAM: fast, and gone with the VM once the results are out
repo=/tmp/agentvm-repo
mkdir -p "$out" || exit 90
export HOME=/tmp/agentvm-home GIT_CONFIG_NOSYSTEM=1 GIT_TERMINAL_PROMPT=0
mkdir -p "$HOME"
step() { echo "$1" > "$out/step"; }

step clone
git clone -q --no-checkout /workspace/input/.agentvm-git/base.bundle "$repo" || exit 91
cd "$repo" || exit 91
git checkout -q --detach "$AGENTVM_GIT_BASE" || exit 92
git checkout -q -b agentvm-work || exit 92
git remote remove origin
git config user.name "$AGENTVM_GIT_NAME"
git config user.email "$AGENTVM_GIT_EMAIL"

step agent
read t0 idle < /proc/uptime
timeout -s KILL "$AGENTVM_AGENT_SECS" sh -c "$AGENTVM_AGENT_CMD" </dev/null
rc=$?
read t1 idle < /proc/uptime
echo "$rc" > "$out/agent-exit"
# whole seconds the agent ran: tells the time limit's KILL (137) from another one
echo $(( ${t1%.*} - ${t0%.*} )) > "$out/agent-secs"

step collect
cd "$repo" || exit 93
if [ -n "$(git status --porcelain --untracked-files=all)" ]; then
  git add -A || exit 94
  git diff --cached --binary HEAD > "$out/uncommitted.patch" || exit 94
  if [ "$AGENTVM_GIT_DIRTY" = commit ]; then
    git commit -q -m "agent-vm: uncommitted changes of the agent" || exit 94
    echo committed > "$out/dirty"
  else
    git reset -q
    echo kept > "$out/dirty"
  fi
fi
head=$(git rev-parse --verify -q HEAD) || exit 95
echo "$head" > "$out/head"
if [ "$head" != "$AGENTVM_GIT_BASE" ]; then
  git update-ref refs/agentvm/result "$head" || exit 95
  if git merge-base --is-ancestor "$AGENTVM_GIT_BASE" "$head" 2>/dev/null; then
    git bundle create -q "$out/result.bundle" "$AGENTVM_GIT_BASE..refs/agentvm/result" || exit 96
  else
    git bundle create -q "$out/result.bundle" refs/agentvm/result || exit 96
  fi
fi
step done
cd /
sync
exit 0
