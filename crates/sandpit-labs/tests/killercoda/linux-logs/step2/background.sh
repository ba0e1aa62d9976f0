echo "the archive goes next to the logs" > /root/notes-step2.txt
