// The login page: keep the key (which only this origin could read) and go to the list.
const key = document.querySelector('meta[name="inspector-key"]').content;
localStorage.setItem("inspectorKey", key);
location.replace("/");
